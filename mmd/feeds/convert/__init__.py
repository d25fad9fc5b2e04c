"""Recordings between formats: other recorders' captures -> our recording format
(`binance_usdm`, `cryptofeed`), ours -> hftbacktest's event array (`hftbacktest`) and the event
cache (`events`); `frames` builds Bybit V5 frames, `dispatch` is `mmd convert`.
"""
