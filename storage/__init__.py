"""The registry (SQLModel tables, engine) and the content-addressed artifact store."""
