"""Analyst notebooks over a run folder (`runs/<id>/`), the module they share (`notebooks.analysis`) and the
headless runner behind `make notebooks` (`python -m notebooks.execute`). See docs/notebooks.md."""
