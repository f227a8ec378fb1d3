"""The Flask app and webhooks in and out: HTTP translated into calls to ``tasks/`` and ``storage/``."""
