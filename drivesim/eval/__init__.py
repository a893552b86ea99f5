"""Evaluation stage: route suites, agents, CARLA Leaderboard metrics, the closed-loop runner and reports.

Modules: ``config`` (EvalConfig), ``routes`` (suite schema, checking, generator), ``leaderboard_routes``
(importing Leaderboard 1.0 / 2.0 route files), ``agents`` (interface, built-ins, registry), ``leaderboard`` (the
Leaderboard's scoring rules), ``monitor`` (its route-ending rules), ``metrics`` (per-route and aggregate metrics),
``breakdown`` (per scenario type and ability), ``runner`` (parallel resumable runs), ``report`` (results.json,
Markdown, plots, paired bootstrap comparison), ``testing`` (a fake route simulator).
"""
