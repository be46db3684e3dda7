"""Stage 3, token store: extraction of backbone tokens into a resumable sharded store, and its reader."""
