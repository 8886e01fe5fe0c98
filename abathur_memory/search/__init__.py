"""One retrieval pipeline for documents and memories: query terms, candidates, fusion, hits."""
