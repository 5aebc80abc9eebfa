"""Getting and describing corpora: downloads and their verification."""
