"""An OpenAI-compatible HTTP server for any slmkit model (FastAPI + uvicorn)."""
