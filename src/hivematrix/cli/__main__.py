from hivematrix.cli import main

main()
