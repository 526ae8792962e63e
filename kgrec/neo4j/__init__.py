"""Neo4j: a local server for tests and laptops, import, read-back and write-back."""
