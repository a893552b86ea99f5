"""Evaluation stage: route suites, agents, CARLA Leaderboard 1.0 metrics, the closed-loop runner and reports.

Modules: ``config`` (EvalConfig), ``routes`` (suite schema, checking, generator), ``agents`` (interface,
built-ins, registry), ``metrics`` (pure metric functions), ``runner`` (parallel resumable runs), ``report``
(results.json, Markdown, plots, paired bootstrap comparison), ``testing`` (a fake route simulator).
"""
