from hivematrix.common.db import run_migrations
from hivematrix.helm.models import Base

run_migrations(Base.metadata)
