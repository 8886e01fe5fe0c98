"""Export and import: abathur-memory's own JSONL and the formats people come from."""
