from hivematrix.common.db import run_migrations
from hivematrix.nexus.models import Base

run_migrations(Base.metadata)
