"""Document indexing: scanning roots, chunking markdown, embedding, storing, searching, watching."""
