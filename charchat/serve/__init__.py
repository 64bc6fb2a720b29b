"""The HTTP server: OpenAI- and Ollama-compatible routes and the page (needs the serve extra)."""
