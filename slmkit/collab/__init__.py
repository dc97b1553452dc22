"""SLM–LLM collaboration: speculative decoding, cascades, routing, a privacy proxy and an upstream client."""
