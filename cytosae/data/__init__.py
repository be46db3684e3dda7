"""Stage 1, data: dataset adapters (on-disk layout -> manifest) and robust image reading."""
