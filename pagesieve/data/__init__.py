"""Training data: labeled pages (read/write), HTML corpora -> weakly labeled pages (`build`)."""
from .pages import read_pages, site_of, write_pages

__all__ = ["read_pages", "write_pages", "site_of"]
