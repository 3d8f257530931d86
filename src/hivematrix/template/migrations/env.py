from hivematrix.common.db import run_migrations
from hivematrix.template.models import Base

run_migrations(Base.metadata)
