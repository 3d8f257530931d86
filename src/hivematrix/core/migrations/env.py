from hivematrix.common.db import run_migrations
from hivematrix.core.models import Base

run_migrations(Base.metadata)
