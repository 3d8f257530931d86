from hivematrix.common.db import run_migrations
from hivematrix.identity.models import Base

run_migrations(Base.metadata)
