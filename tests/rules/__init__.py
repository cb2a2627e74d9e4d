"""Rule tables: one test module per rule family, cases written against rules.md."""
