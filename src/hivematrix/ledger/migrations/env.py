from hivematrix.common.db import run_migrations
from hivematrix.ledger.models import Base

run_migrations(Base.metadata)
