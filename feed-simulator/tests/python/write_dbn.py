"""Writes a DBN file with Databento's own encoder (the `databento-dbn` package).

The DBN import tests (feed-simulator/tests/import_dbn.rs) describe records as
JSON on stdin and check the importer against them, so the fixture comes from
an encoder that is not ours. Usage: write_dbn.py OUT_FILE < spec.json

spec: {"schema": "mbp-1" | ... | null, "start": ns,
       "mappings": [{"raw_symbol", "instrument_id", "start_date", "end_date"}],
       "records": [{"kind": "mbp-1" | "tbbo" | "bbo-1s" | "bbo-1m" | "trades"
                    | "mbp-10" | "symbol-mapping", ...fields}]}
Prices are integers in units of 1e-9; a level is [bid_px, ask_px, bid_sz, ask_sz].
"""

import datetime
import json
import sys
from types import SimpleNamespace

import databento_dbn as dbn

SCHEMAS = {
    "mbp-1": dbn.Schema.MBP_1,
    "tbbo": dbn.Schema.TBBO,
    "bbo-1s": dbn.Schema.BBO_1S,
    "bbo-1m": dbn.Schema.BBO_1M,
    "trades": dbn.Schema.TRADES,
    "mbp-10": dbn.Schema.MBP_10,
    "ohlcv-1s": dbn.Schema.OHLCV_1S,
}
ACTIONS = {"A": dbn.Action.ADD, "C": dbn.Action.CANCEL, "M": dbn.Action.MODIFY, "T": dbn.Action.TRADE}
SIDES = {"A": dbn.Side.ASK, "B": dbn.Side.BID, "N": dbn.Side.NONE}
PUBLISHER = 2  # XNAS.ITCH


def level(values):
    bid_px, ask_px, bid_sz, ask_sz = values
    return dbn.BidAskPair(bid_px=bid_px, ask_px=ask_px, bid_sz=bid_sz, ask_sz=ask_sz)


def record(r):
    common = dict(publisher_id=PUBLISHER, instrument_id=r["iid"], ts_event=r["ts"])
    kind = r["kind"]
    if kind in ("mbp-1", "tbbo"):
        return dbn.MBP1Msg(**common, price=r["price"], size=r["size"], action=ACTIONS[r["action"]],
                           side=SIDES[r["side"]], depth=0, ts_recv=r["ts"] + 1_000,
                           levels=level(r["levels"][0]))
    if kind == "mbp-10":
        levels = [level(v) for v in r["levels"]]
        levels += [dbn.BidAskPair()] * (10 - len(levels))
        return dbn.MBP10Msg(**common, price=r["price"], size=r["size"], action=ACTIONS[r["action"]],
                            side=SIDES[r["side"]], depth=r.get("depth", 0), ts_recv=r["ts"] + 1_000,
                            levels=levels)
    if kind in ("bbo-1s", "bbo-1m"):
        rtype = dbn.RType.BBO_1S if kind == "bbo-1s" else dbn.RType.BBO_1M
        return dbn.BBOMsg(rtype=rtype, **common, price=r["price"], size=r["size"],
                          side=SIDES[r["side"]], ts_recv=r["ts"] + 1_000, levels=level(r["levels"][0]))
    if kind == "trades":
        return dbn.TradeMsg(**common, price=r["price"], size=r["size"], action=dbn.Action.TRADE,
                            side=SIDES[r["side"]], depth=0, ts_recv=r["ts"] + 1_000)
    if kind == "symbol-mapping":
        return dbn.SymbolMappingMsg(**common, stype_in=dbn.SType.RAW_SYMBOL, stype_in_symbol=r["symbol"],
                                    stype_out=dbn.SType.INSTRUMENT_ID, stype_out_symbol=r["symbol"],
                                    start_ts=r["start_ts"], end_ts=r["end_ts"])
    raise SystemExit(f"unknown record kind {kind!r}")


def main():
    spec = json.load(sys.stdin)
    mappings = [
        SimpleNamespace(raw_symbol=m["raw_symbol"], intervals=[SimpleNamespace(
            start_date=datetime.date.fromisoformat(m["start_date"]),
            end_date=datetime.date.fromisoformat(m["end_date"]),
            symbol=str(m["instrument_id"]))])
        for m in spec.get("mappings", [])
    ]
    schema = spec.get("schema")
    metadata = dbn.Metadata(
        dataset="XNAS.ITCH", start=spec["start"], stype_in=dbn.SType.RAW_SYMBOL,
        stype_out=dbn.SType.INSTRUMENT_ID, schema=SCHEMAS[schema] if schema else None,
        symbols=[m.raw_symbol for m in mappings], mappings=mappings)
    with open(sys.argv[1], "wb") as out:
        out.write(metadata.encode())
        for r in spec["records"]:
            out.write(bytes(record(r)))


if __name__ == "__main__":
    main()
