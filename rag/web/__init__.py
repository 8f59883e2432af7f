"""The public web app and HTTP API: `create_app(settings, pipeline)` → FastAPI with the Gradio page at "/"."""
from .api import create_app

__all__ = ["create_app"]
