"""Clinical shorthand rewritten into plain language by a small T5 the project trains itself."""
