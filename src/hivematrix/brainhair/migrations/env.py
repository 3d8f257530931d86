from hivematrix.brainhair.models import Base
from hivematrix.common.db import run_migrations

run_migrations(Base.metadata)
