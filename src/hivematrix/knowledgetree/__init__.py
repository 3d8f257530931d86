"""KnowledgeTree: the graph knowledge base (folders and articles in a tree, ranked search,
context for the assistant, Codex sync).

So far only its storage layer: :mod:`.graph` (the graph-store port with FalkorDB and Neo4j
adapters) and :mod:`.items` (the model and its invariants).
"""
