"""The CGMiner-style JSON RPC of TCP 4028, as LuxOS (custom) and Avalon (stock) firmwares answer it.

A request is one JSON object `{"command": "a+b", "parameter": "x,y"}`; the reply is one JSON object followed by
a NUL byte, after which the miner closes the connection. `a+b` is a multicommand: the reply holds one list per
command (`{"a": [{...}], "b": [{...}]}`). Replies carry the STATUS block CGMiner defines (`S` success, `E`
error). The commands and fields are those `pyasic` 0.79 reads (`pyasic/rpc/luxminer.py`,
`pyasic/miners/backends/luxminer.py`, `avalonminer.py`, `miners/factory.py`): detection (`version`,
`devdetails`), reads (`summary`, `power`, `stats`, `config`, `profiles`, `devs`, `estats`), sessions
(`session`, `logon`, `logoff`) and control (`curtail`, `profileset`, `atm`, `atmset`, `ascset`).
"""

from __future__ import annotations

import json
import secrets
import time

from .devices import SimMiner

LUXOS_VERSION = "2024.12.16.170535-5d7b66e6"
PRIVILEGED = {"curtail", "profileset", "atmset", "logoff"}


def _status(code: int, msg: str, *, ok: bool = True, description: str = "") -> list[dict]:
    return [
        {"STATUS": "S" if ok else "E", "When": int(time.time()), "Code": code, "Msg": msg, "Description": description}
    ]


def _describe(miner: SimMiner) -> str:
    return f"LUXminer {LUXOS_VERSION}" if miner.firmware == "luxos" else "cgminer 4.11.1"


def _ok(miner: SimMiner, code: int, msg: str, **body) -> dict:
    return {"STATUS": _status(code, msg, description=_describe(miner)), **body, "id": 1}


def _error(miner: SimMiner, code: int, msg: str) -> dict:
    return {"STATUS": _status(code, msg, ok=False, description=_describe(miner)), "id": 1}


def handle_request(miner: SimMiner, raw: bytes) -> bytes:
    """The reply bytes (JSON + NUL) to one request."""
    miner.reads += 1
    try:
        request = json.loads(raw.decode("utf-8").strip("\x00 \r\n"))
        command = str(request["command"])
        parameter = str(request.get("parameter", ""))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return json.dumps(_error(miner, 23, "Invalid JSON")).encode() + b"\x00"
    commands = command.split("+")
    if len(commands) == 1:
        reply = _answer(miner, command, parameter)
    else:
        reply = {name: [_answer(miner, name, "")] for name in commands}
        reply["id"] = 1
    return json.dumps(reply).encode() + b"\x00"


def _answer(miner: SimMiner, command: str, parameter: str) -> dict:
    handlers = LUXOS if miner.firmware == "luxos" else AVALON
    handler = handlers.get(command)
    if handler is None:
        return _error(miner, 14, "Invalid command")
    args = parameter.split(",") if parameter else []
    if miner.firmware == "luxos" and command in PRIVILEGED:
        if not args or not miner.session_id or args[0] != miner.session_id:
            return _error(miner, 401, "Invalid session id")
        args = args[1:]
    return handler(miner, args)


# LuxOS --------------------------------------------------------------------------------------------------------


def _lux_version(miner: SimMiner, args: list[str]) -> dict:
    return _ok(
        miner,
        22,
        "LUXminer versions",
        VERSION=[{"API": "3.7", "LUXminer": LUXOS_VERSION, "Miner": LUXOS_VERSION, "Type": miner.model}],
    )


def _devdetails(miner: SimMiner, args: list[str]) -> dict:
    return _ok(
        miner,
        69,
        "Device Details",
        DEVDETAILS=[{"DEVDETAILS": i, "Name": "BC50", "ID": i, "Model": miner.model} for i in range(3)],
    )


def _summary(miner: SimMiner, args: list[str]) -> dict:
    _running, _watts, ths, _temp = miner.read()
    ghs = round(ths * 1000, 2)
    return _ok(
        miner, 11, "Summary", SUMMARY=[{"Elapsed": miner.elapsed_s, "GHS 5s": ghs, "GHS av": ghs, "Accepted": 1000}]
    )


def _power(miner: SimMiner, args: list[str]) -> dict:
    _running, watts, _ths, _temp = miner.read()
    return _ok(miner, 335, "Power", POWER=[{"Watts": round(watts), "PSU": False}])


def _stats(miner: SimMiner, args: list[str]) -> dict:
    _running, _watts, ths, temp = miner.read()
    board: dict = {"Elapsed": miner.elapsed_s, "total_rateideal": miner.nominal_ths * 1000, "rate_unit": "GH"}
    for n in (1, 2, 3):
        chip, pcb = round(temp + 5), round(temp)
        board[f"chain_rate{n}"] = round(ths * 1000 / 3, 2)
        board[f"chain_acn{n}"] = 108
        board[f"temp_chip{n}"] = f"{chip}-{chip}-{chip}-{chip}"
        board[f"temp_pcb{n}"] = f"{pcb}-{pcb}-{pcb}-{pcb}"
    return _ok(miner, 70, "CGMiner stats", STATS=[{"STATS": 0, "ID": "BC50", "Elapsed": miner.elapsed_s}, board])


def _config(miner: SimMiner, args: list[str]) -> dict:
    mac = "02:00:" + ":".join(f"{int(p):02X}" for p in miner.address.split("."))
    return _ok(miner, 33, "Configuration", CONFIG=[{"Profile": miner.profile, "RedLed": "off", "MACAddr": mac}])


def _profiles(miner: SimMiner, args: list[str]) -> dict:
    return _ok(
        miner,
        329,
        "Profiles",
        PROFILES=[
            {
                "Profile Name": p.name,
                "Watts": p.watts,
                "Hashrate": p.hashrate_ths,
                "IsTuned": False,
                "Frequency": p.frequency_mhz,
                "Voltage": p.voltage_v,
            }
            for p in miner.profiles
        ],
    )


def _session(miner: SimMiner, args: list[str]) -> dict:
    return _ok(miner, 330, "Session", SESSION=[{"SessionID": miner.session_id}])


def _logon(miner: SimMiner, args: list[str]) -> dict:
    miner.session_id = miner.session_id or secrets.token_hex(4)
    return _ok(miner, 330, "Session created", SESSION=[{"SessionID": miner.session_id}])


def _logoff(miner: SimMiner, args: list[str]) -> dict:
    miner.session_id = ""
    return _ok(miner, 331, "Session closed")


def _curtail(miner: SimMiner, args: list[str]) -> dict:
    if args not in (["sleep"], ["wakeup"]):
        return _error(miner, 400, "Invalid curtail mode")
    miner.set_on(args[0] == "wakeup")
    return _ok(miner, 336, f"Curtail {args[0]}")


def _profileset(miner: SimMiner, args: list[str]) -> dict:
    if len(args) != 1 or not miner.set_profile(args[0]):
        return _error(miner, 402, "Unknown profile")
    return _ok(miner, 343, "Profile set", PROFILE=[{"Profile": args[0]}])


def _atm(miner: SimMiner, args: list[str]) -> dict:
    return _ok(miner, 339, "ATM configuration values", ATM=[{"Enabled": False, "MaxProfile": "default"}])


def _atmset(miner: SimMiner, args: list[str]) -> dict:
    return _ok(miner, 340, "ATM set")


def _tempctrl(miner: SimMiner, args: list[str]) -> dict:
    return _ok(miner, 320, "Temp control", TEMPCTRL=[{"Mode": "Auto", "Target": 75, "Hot": 85, "Dangerous": 95}])


def _fans(miner: SimMiner, args: list[str]) -> dict:
    return _ok(
        miner, 202, "Fans", FANS=[{"FAN": i, "RPM": 4200, "Speed": 60} for i in range(4)], FANCTRL=[{"MinFans": 4}]
    )


def _pools(miner: SimMiner, args: list[str]) -> dict:
    pool = {"POOL": 0, "URL": "stratum+tcp://pool.invalid:3333", "User": "energyarb.sim", "GROUP": 0}
    return _ok(miner, 7, "Pools", POOLS=[{**pool, "Status": "Alive", "Accepted": 1000, "Stratum Active": True}])


def _groups(miner: SimMiner, args: list[str]) -> dict:
    return _ok(miner, 7, "Groups", GROUPS=[{"GROUP": 0, "Name": "Default", "Quota": 1}])


LUXOS = {
    "version": _lux_version,
    "devdetails": _devdetails,
    "summary": _summary,
    "power": _power,
    "stats": _stats,
    "config": _config,
    "profiles": _profiles,
    "session": _session,
    "logon": _logon,
    "logoff": _logoff,
    "curtail": _curtail,
    "profileset": _profileset,
    "atm": _atm,
    "atmset": _atmset,
    "tempctrl": _tempctrl,
    "fans": _fans,
    "pools": _pools,
    "groups": _groups,
}


# Avalon (stock CGMiner) ---------------------------------------------------------------------------------------


def _avalon_version(miner: SimMiner, args: list[str]) -> dict:
    mac = "0200" + "".join(f"{int(p):02x}" for p in miner.address.split("."))
    return _ok(
        miner,
        22,
        "CGMiner versions",
        VERSION=[
            {
                "CGMiner": "4.11.1",
                "API": "3.7",
                "PROD": f"{miner.model}-83",
                "MODEL": miner.model.split()[-1],
                "MAC": mac,
            }
        ],
    )


def _devs(miner: SimMiner, args: list[str]) -> dict:
    _running, _watts, ths, _temp = miner.read()
    mhs = round(ths * 1e6, 2)
    return _ok(
        miner, 9, "1 ASC(s)", DEVS=[{"ASC": 0, "Name": "AVA10", "Status": "Alive", "MHS 1m": mhs, "MHS av": mhs}]
    )


def _estats(miner: SimMiner, args: list[str]) -> dict:
    running, watts, _ths, temp = miner.read()
    fields = {
        "Ver": f"{miner.model.split()[-1]}-83",
        "Elapsed": miner.elapsed_s,
        "Temp": 25,
        "TMax": round(temp + 5),
        "TAvg": round(temp),
        "Fan1": 4200 if running else 0,
        "GHSmm": round(miner.nominal_ths * 1000, 2),
        "WALLPOWER": round(watts),
        "MPO": miner.nominal_w,
        "Led": 0,
        "SYSTEMSTATU": "Work: In Work" if running else "Work: Idle",
    }
    text = " ".join(f"{k}[{v}]" for k, v in fields.items())
    return _ok(
        miner, 70, "CGMiner stats", STATS=[{"STATS": 0, "ID": "AVA100", "Elapsed": miner.elapsed_s, "MM ID0": text}]
    )


def _ascset(miner: SimMiner, args: list[str]) -> dict:
    if len(args) >= 2 and args[1] in ("softoff", "softon"):
        miner.set_on(args[1] == "softon")
        return _ok(miner, 119, f"ASC 0 set info: success {args[1]}")
    if len(args) >= 2 and args[1] == "worklevel":
        return _ok(miner, 119, "ASC 0 set OK")
    return _error(miner, 120, "ASC 0 set failed: unsupported option")


AVALON = {
    "version": _avalon_version,
    "devdetails": _devdetails,
    "summary": _summary,
    "devs": _devs,
    "estats": _estats,
    "ascset": _ascset,
    "pools": _pools,
}
