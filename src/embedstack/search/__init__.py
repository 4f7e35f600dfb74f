"""Search beyond plain vectors: the keyword analyzer, fusion, reranking and diversity."""
