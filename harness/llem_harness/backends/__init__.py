"""Inference backends; each is imported only when it runs."""
