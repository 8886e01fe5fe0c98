"""Markdown folders: roots, scanning, chunking, the indexing worker and the watcher."""
