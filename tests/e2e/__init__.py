"""End-to-end tests: the pack inside a real ComfyUI server, driven over its HTTP API."""
