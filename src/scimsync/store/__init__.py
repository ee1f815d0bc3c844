"""Storage: SQLAlchemy Core tables, migrations, and the transactional services over them."""
