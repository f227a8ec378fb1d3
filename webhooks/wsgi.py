"""WSGI entry point for gunicorn and other servers: ``webhooks.wsgi:app``."""

from webhooks.app import create_app

app = create_app()
