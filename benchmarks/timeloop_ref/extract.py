"""Regenerate tests/fixtures/timeloop/*.json from Timeloop's public reference outputs.

Reads a clone (or the bare git dir) of Accelergy-Project/timeloop-accelergy-exercises
at one commit and writes one JSON fixture per reference-output folder that holds a
``timeloop-{model,mapper}.stats.txt``. Every number comes from the repo's files:

* ``parsed-processed-input.yaml``: the problem and architecture Timeloop actually ran
  (this can differ from the exercise's current ``arch/*.yaml``, see the README);
* ``*.map.txt``: the resolved mapping (tiles, loop order, spatial axes, kept tensors);
* ``*.map.yaml`` (mapper runs) or the mapping in ``parsed-processed-input.yaml``
  (model runs): the mapping in Timeloop's input syntax;
* ``*.stats.txt``: the per-level, per-tensor counts as printed (labels kept verbatim);
* ``*.map+stats.xml``: the same counters at full precision, plus network stats;
* ``*.ERT.yaml``: the per-action energies Accelergy assigned.

The repo's files are parsed as data only (``yaml.safe_load``, ElementTree without
entity expansion). Usage::

    python benchmarks/timeloop_ref/extract.py --repo PATH [--commit REV] [--out DIR]
    python benchmarks/timeloop_ref/extract.py --repo PATH --check   # compare, write nothing
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import yaml

REPO_NAME = "Accelergy-Project/timeloop-accelergy-exercises"
REF_DIR_RE = re.compile(r"/ref[-_]outputs?(/|$)")
STATS_RE = re.compile(r"^(?P<dir>.*)/(?P<prefix>timeloop-(?:model|mapper))\.stats\.txt$")


class ExtractError(Exception):
    """A reference file did not have the layout this parser expects."""


# --------------------------------------------------------------------------- git access
class GitSource:
    """Read files of one commit from a bare git dir or a clone."""

    def __init__(self, repo: str, commit: str) -> None:
        git_dir = Path(repo)
        if (git_dir / ".git").exists():
            git_dir = git_dir / ".git"
        self.git_dir = str(git_dir)
        self.commit = self._git("rev-parse", commit + "^{commit}").strip()

    def _git(self, *args: str) -> str:
        res = subprocess.run(["git", "--git-dir", self.git_dir, *args],
                             capture_output=True, text=True)
        if res.returncode != 0:
            raise ExtractError(f"git {' '.join(args)}: {res.stderr.strip()}")
        return res.stdout

    def files(self) -> list[str]:
        return self._git("ls-tree", "-r", "--name-only", self.commit).splitlines()

    def read(self, path: str) -> str:
        return self._git("show", f"{self.commit}:{path}")


# --------------------------------------------------------------------------- value parsing
_NUM_RE = re.compile(r"^(-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(pJ|uJ|fJ|um\^2|mm\^2|words/cycle|%)?$")
_MESH_RE = re.compile(r"^(\d+) \((\d+)\*(\d+)\)$")


def parse_value(text: str) -> Any:
    """'48' -> 48, '0.43 pJ' -> 0.43, '100.00%' -> 100.0, '-' -> None, else the string."""
    text = text.strip()
    if text in ("-", ""):
        return None
    m = _NUM_RE.match(text)
    if m:
        num = m.group(1)
        if re.fullmatch(r"-?\d+", num):
            return int(num)
        return float(num)
    return text


def _num_or_text(text: str | None) -> Any:
    if text is None:
        return None
    t = text.strip()
    if re.fullmatch(r"-?\d+", t):
        return int(t)
    try:
        f = float(t)
    except ValueError:
        return t
    return None if math.isnan(f) else f


# --------------------------------------------------------------------------- stats.txt
_KV_RE = re.compile(r"^(?P<indent> *)(?P<key>[^:]+?)\s*:\s*(?P<val>.*?)\s*$")
_RANK_RE = re.compile(r"^\s*(Rank \d+) \(metadata, payload\): \((\S+?),\s*(\S+?)\)\s*$")


def _put(d: dict, key: str, raw: str) -> None:
    m = _MESH_RE.match(raw.strip())
    if m:
        d[key] = int(m.group(1))
        d[key + " mesh"] = [int(m.group(2)), int(m.group(3))]
    else:
        d[key] = parse_value(raw)


def parse_stats_txt(text: str) -> dict:
    """Parse a Timeloop/Sparseloop stats.txt into levels (innermost first), summary."""
    lines = text.splitlines()
    levels: list[dict] = []
    summary: dict[str, Any] = {}
    i, n = 0, len(lines)
    section = None
    cur: dict | None = None
    block = None          # SPECS | MAPPING | STATS
    tensor: dict | None = None
    pending_multi: tuple[dict, str] | None = None
    table: str | None = None
    while i < n:
        line = lines[i]
        stripped = line.strip()
        if line in ("Buffer and Arithmetic Levels", "Networks", "Operational Intensity Stats",
                    "Summary Stats"):
            section = line
            i += 2
            cur = None
            continue
        if section == "Buffer and Arithmetic Levels":
            m = re.match(r"^Level (\d+)$", line)
            if m:
                name_line = lines[i + 2] if i + 2 < n else ""
                nm = re.match(r"^=== (.+) ===$", name_line)
                if not nm:
                    raise ExtractError(f"stats.txt: no '=== name ===' after {line!r}")
                cur = {"level_index": int(m.group(1)), "name": nm.group(1), "specs": {},
                       "loop_nest": [], "stats": {}, "tensors": {}}
                levels.append(cur)
                i += 3
                block, tensor, pending_multi = None, None, None
                continue
            if cur is None:
                i += 1
                continue
            if stripped in ("SPECS", "MAPPING", "STATS"):
                block = stripped
                tensor, pending_multi = None, None
                i += 2  # skip the dashes
                continue
            if not stripped:
                i += 1
                continue
            if block == "MAPPING":
                if stripped != "Loop nest:":
                    cur["loop_nest"].append(stripped)
                i += 1
                continue
            if stripped.startswith("Breakdown (Data, Format)"):
                i += 1
                continue
            rm = _RANK_RE.match(line)
            if rm and pending_multi is not None:
                d, key = pending_multi
                d.setdefault(key, {})[rm.group(1)] = [parse_value(rm.group(2)),
                                                      parse_value(rm.group(3))]
                i += 1
                continue
            if block == "STATS" and re.match(r"^    [A-Za-z][\w ]*:$", line):
                tensor = {}
                cur["tensors"][stripped[:-1]] = tensor
                pending_multi = None
                i += 1
                continue
            target = cur["specs"] if block == "SPECS" else (tensor if tensor is not None
                                                            else cur["stats"])
            kv = _KV_RE.match(line)
            if kv:
                _put(target, kv.group("key"), kv.group("val"))
                pending_multi = None
            else:
                # a key whose value is a per-rank breakdown on the following lines
                pending_multi = (target, stripped)
            i += 1
            continue
        if section == "Summary Stats":
            m_eq = re.match(r"^([^=]+?)\s*=\s*(\S+)$", stripped)
            m_col = re.match(r"^([^:=]+?)\s*:\s*(.+)$", stripped)
            if m_eq:
                if line.startswith("    ") and table is not None:
                    summary.setdefault(table, {})[m_eq.group(1)] = parse_value(m_eq.group(2))
                else:
                    summary[m_eq.group(1)] = parse_value(m_eq.group(2))
            elif m_col:
                summary[m_col.group(1)] = parse_value(m_col.group(2))
            elif stripped.startswith("fJ/"):
                table = stripped
            i += 1
            continue
        i += 1
    if not levels:
        raise ExtractError("stats.txt: no 'Level N' sections found")
    return {"levels": levels, "summary": summary}



# --------------------------------------------------------------------------- map+stats.xml
def _xml_item(it: ET.Element) -> Any:
    """A leaf number, or (boost vector: <count>, <item>...) a nested list, e.g. per-rank
    [metadata, payload] format counts."""
    if it.find("count") is not None:
        return [_xml_item(x) for x in it.findall("item")]
    return _num_or_text(it.text)


def _xml_value(el: ET.Element) -> Any:
    pds = el.find("PerDataSpace")
    if pds is not None:
        return [_xml_item(it) for it in pds.findall("item")]
    t = el.find("t_")
    if t is not None:
        return _num_or_text(t.text)
    if len(el) == 0:
        return _num_or_text(el.text)
    return None


def parse_stats_xml(text: str) -> dict:
    """Full-precision per-level stats (PerDataSpace arrays) and network stats."""
    root = ET.fromstring(text)
    topo = root.find("engine/topology_")
    if topo is None:
        raise ExtractError("map+stats.xml: no engine/topology_")
    levels = []
    for it in topo.find("levels_").findall("item"):
        px = it.find("px")
        name_el = px.find("specs_/LevelSpecs/level_name")
        lvl: dict[str, Any] = {"name": name_el.text if name_el is not None else None}
        st = px.find("stats_")
        if st is None:  # arithmetic level: scalar members
            lvl["kind"] = "arithmetic"
            for c in px:
                if c.tag.endswith("_") and len(c) == 0:
                    lvl[c.tag.rstrip("_")] = _num_or_text(c.text)
        else:
            lvl["kind"] = "storage"
            for c in st:
                v = _xml_value(c)
                if v is not None:
                    lvl[c.tag] = v
        levels.append(lvl)
    networks = []
    nets = topo.find("networks_")
    if nets is not None:
        for it in nets.findall("item"):
            px = it.find("second/px")
            net: dict[str, Any] = {"name": it.find("first").text}
            st = px.find("stats_")
            if st is not None:
                for c in st:
                    v = _xml_value(c)
                    if v is not None:
                        net[c.tag] = v
            networks.append(net)
    return {"levels": levels, "networks": networks}


# --------------------------------------------------------------------------- map.txt
_HDR_RE = re.compile(r"^(?P<name>\S+) \[ (?P<body>.*?)\s*\] $|^(?P<name2>\S+) \[ (?P<body2>.*?)\s*\]$")
_TILE_RE = re.compile(r"(\w+):(\d+) \((\d+)\)")
_LOOP_RE = re.compile(r"^\|\s*for (\w+) in \[(\d+):(\d+)(?:,(\d+))?\)(?: \(Spatial-([XY])\))?\s*$")


def parse_map_txt(text: str) -> list[dict]:
    """Storage levels outermost first; loops attach to the last header above them."""
    out: list[dict] = []
    for line in text.splitlines():
        if not line.strip() or set(line.strip()) == {"-"}:
            continue
        h = _HDR_RE.match(line)
        if h:
            name = h.group("name") or h.group("name2")
            body = h.group("body") if h.group("name") else h.group("body2")
            tiles = {t: {"tile": int(a), "utilized": int(b)} for t, a, b in _TILE_RE.findall(body)}
            out.append({"name": name, "keep": tiles, "loops": []})
            continue
        lm = _LOOP_RE.match(line)
        if lm:
            if not out:
                raise ExtractError(f"map.txt: loop before any level header: {line!r}")
            loop = {"dim": lm.group(1), "start": int(lm.group(2)), "end": int(lm.group(3)),
                    "spatial": lm.group(5)}
            if lm.group(4) is not None:
                loop["residual_end"] = int(lm.group(4))
            out[-1]["loops"].append(loop)
            continue
        if "<< Compute >>" in line:
            continue
        raise ExtractError(f"map.txt: unrecognised line {line!r}")
    return out


# --------------------------------------------------------------------------- problem / arch
def _projection_terms(proj: list) -> list[list[list]]:
    """[[ [dim, coef?], ... ] per rank] -> [[ {dim, coef} ... ] ...]."""
    ranks = []
    for rank in proj:
        terms = []
        for term in rank:
            terms.append({"dim": term[0], "coefficient": term[1] if len(term) > 1 else None})
        ranks.append(terms)
    return ranks


def _rank_str(rank: list[dict]) -> str:
    return " + ".join(t["dim"] + (f"*{t['coefficient']}" if t["coefficient"] else "")
                      for t in rank)


def build_problem(ppi: dict) -> dict:
    prob = ppi["problem"]
    shape, inst = prob["shape"], dict(prob["instance"])
    densities = inst.pop("densities", {}) or {}
    coefs = {c["name"]: inst.get(c["name"], c.get("default", 1))
             for c in shape.get("coefficients", []) or []}
    dims = list(shape["dimensions"])
    spaces = []
    for ds in shape["data_spaces"]:
        ranks = _projection_terms(ds["projection"])
        spaces.append({"name": ds["name"], "read_write": bool(ds.get("read_write", False)),
                       "projection": ranks,
                       "projection_text": "".join(f"[{_rank_str(r)}]" for r in ranks)})
    macs = 1
    for d in dims:
        macs *= int(inst[d])
    return {"name": shape.get("name"), "dimensions": dims,
            "bounds": {d: int(inst[d]) for d in dims},
            "coefficients": coefs, "data_spaces": spaces,
            "densities": densities, "algorithmic_macs": macs}


_INST_RE = re.compile(r"^(?P<name>.+)\[1\.\.(?P<n>\d+)\]$")


def flatten_arch(ppi: dict) -> list[dict]:
    """Local components outermost first, from the processed architecture tree."""
    out: list[dict] = []

    def walk(node: dict) -> None:
        for comp in node.get("local", []) or []:
            m = _INST_RE.match(comp["name"])
            name, n = (m.group("name"), int(m.group("n"))) if m else (comp["name"], 1)
            out.append({"name": name, "instances": n, "class": comp.get("class"),
                        "attributes": comp.get("attributes", {})})
        for sub in node.get("subtree", []) or []:
            walk(sub)

    walk(ppi["architecture"])
    return out


# --------------------------------------------------------------------------- ERT
def build_ert(ert: dict) -> list[dict]:
    rows = []
    for table in ert["ERT"]["tables"]:
        m = re.search(r"(?:^|\.)([^.\[]+)(?:\[1\.\.\d+\])?$", table["name"])
        if not m:
            raise ExtractError(f"ERT: unexpected table name {table['name']!r}")
        comp = m.group(1)
        for act in table["actions"]:
            rows.append({"component": comp, "action": act["name"],
                         "arguments": act.get("arguments") or {}, "energy_pJ": act["energy"]})
    return rows


# --------------------------------------------------------------------------- fixture
_COUNT_KEYS = {
    # normalized name: (old-format label, new-format label)
    "reads": ("Scalar reads (per-instance)", "Actual scalar reads (per-instance)"),
    "fills": ("Scalar fills (per-instance)", "Actual scalar fills (per-instance)"),
    "updates": ("Scalar updates (per-instance)", "Actual scalar updates (per-instance)"),
}


def _first(d: dict, *keys: str) -> Any:
    for k in keys:
        if k in d:
            return d[k]
    return None


def _normalize_tensor(txt: dict, xml: dict, idx: int) -> dict:
    out: dict[str, Any] = {}
    for norm, labels in _COUNT_KEYS.items():
        out[f"{norm}_per_instance"] = _first(txt, *labels)
        for kind in ("Algorithmic", "Gated", "Skipped"):
            v = txt.get(f"{kind} scalar {norm} (per-instance)")
            if v is not None:
                out[f"{kind.lower()}_{norm}_per_instance"] = v
    out["temporal_reductions_per_instance"] = txt.get("Temporal reductions (per-instance)")
    out["utilized_instances_max"] = txt.get("Utilized instances (max)")
    if "Utilized instances (average)" in txt:
        out["utilized_instances_average"] = txt["Utilized instances (average)"]
    out["partition_size"] = txt.get("Partition size")
    out["utilized_capacity"] = _first(txt, "Utilized capacity", "Max utilized data storage capacity")
    # full precision from the XML (per instance), same dataspace index
    if xml:
        out["energy_pJ_per_instance"] = xml["energy"][idx]
        for key in ("temporal_reduction_energy", "addr_gen_energy"):
            if key in xml:
                out[key + "_pJ_per_instance"] = xml[key][idx]
    out["utilized_clusters_max"] = txt.get("Utilized clusters (max)")
    ui = out["utilized_instances_max"] or 0
    out["derived_totals"] = {
        f"{k}_total": (out[f"{k}_per_instance"] * ui if out[f"{k}_per_instance"] is not None
                       else None) for k in ("reads", "fills", "updates")}
    if xml:
        out["derived_totals"]["energy_pJ_total"] = out["energy_pJ_per_instance"] * ui
    for k, v in txt.items():
        if isinstance(v, dict):      # per-rank metadata counts (sparse formats)
            out.setdefault("format_ranks", {})[k] = v
    return out


def build_fixture(src: GitSource, ref_dir: str, prefix: str, name: str) -> dict:
    def rd(suffix: str) -> str:
        return src.read(f"{ref_dir}/{prefix}.{suffix}")

    ppi = yaml.safe_load(src.read(f"{ref_dir}/parsed-processed-input.yaml"))
    stats_text = rd("stats.txt")
    stats = parse_stats_txt(stats_text)
    xml = parse_stats_xml(rd("map+stats.xml"))
    map_text = rd("map.txt")
    map_levels = parse_map_txt(map_text)
    ert = build_ert(yaml.safe_load(rd("ERT.yaml")))
    files = set(src.files())
    map_yaml_path = f"{ref_dir}/{prefix}.map.yaml"
    if map_yaml_path in files:
        mapping_input = yaml.safe_load(src.read(map_yaml_path))["mapping"]
        mapping_input_src = map_yaml_path
    else:
        mapping_input = ppi.get("mapping")
        mapping_input_src = f"{ref_dir}/parsed-processed-input.yaml"

    problem = build_problem(ppi)
    tensors = [d["name"] for d in problem["data_spaces"]]
    arch_nodes = {a["name"]: a for a in flatten_arch(ppi)}
    xml_by_name = {lv["name"]: lv for lv in xml["levels"]}
    map_by_name = {m["name"]: m for m in map_levels}

    levels_out = []
    for lv in reversed(stats["levels"]):           # outermost first
        lname = lv["name"]
        node = arch_nodes.get(lname, {})
        xl = xml_by_name.get(lname, {})
        specs = lv["specs"]
        entry: dict[str, Any] = {
            "name": lname, "stats_level_index": lv["level_index"],
            "class": node.get("class"),
            "instances": specs.get("Instances"), "mesh": specs.get("Instances mesh"),
        }
        for k, labels in (("word_bits", ("Word bits", "Data word bits")),
                          ("block_size", ("Block size", "Data block size")),
                          ("size_words", ("Size", "Data storage size")),
                          ("cluster_size", ("Cluster size",)),
                          ("metadata_word_bits", ("Metadata storage width(bits)",))):
            v = _first(specs, *labels)
            if v is not None:
                entry[k] = v
        attrs = node.get("attributes", {})
        for k in ("depth", "width", "datawidth", "block_size", "meshX", "meshY",
                  "read_bandwidth", "write_bandwidth", "metadata_storage_width",
                  "metadata_storage_depth"):
            if k in attrs:
                entry[k] = attrs[k]
        if xl.get("kind") == "arithmetic":
            entry["kind"] = "compute"
            entry["reference"] = {"stats_txt": lv["stats"],
                                  "xml": {k: v for k, v in xl.items() if k not in ("name", "kind")}}
        else:
            entry["kind"] = "storage"
            mt = map_by_name.get(lname)
            entry["keeps"] = sorted(mt["keep"], key=tensors.index) if mt else None
            entry["bypasses"] = [t for t in tensors if mt and t not in mt["keep"]]
            per_tensor = {}
            for t, tdict in lv["tensors"].items():
                idx = tensors.index(t)
                xl_t = xl if xl.get("kind") == "storage" else {}
                per_tensor[t] = {"counts": _normalize_tensor(tdict, xl_t, idx),
                                 "stats_txt": tdict,
                                 "xml": {k: v[idx] for k, v in xl_t.items()
                                         if isinstance(v, list) and len(v) == len(tensors)}}
            entry["reference"] = {"stats_txt": lv["stats"], "tensors": per_tensor}
        entry["specs_txt"] = specs
        entry["loop_nest_txt"] = lv["loop_nest"]
        levels_out.append(entry)

    # mapping per map.txt level (outermost first)
    mapping_levels = []
    for m in map_levels:
        temporal = [lp for lp in m["loops"] if lp["spatial"] is None]
        spatial = [lp for lp in m["loops"] if lp["spatial"] is not None]
        mapping_levels.append({
            "level": m["name"],
            "keep_tiles": m["keep"],
            "temporal_loops_outer_to_inner": [[lp["dim"], lp["end"] - lp["start"]] for lp in temporal],
            "spatial_loops": [[lp["dim"], lp["end"] - lp["start"], lp["spatial"]] for lp in spatial],
            "temporal_factors": _factors(temporal, problem["dimensions"]),
            "spatial_factors": _factors(spatial, problem["dimensions"]),
        })

    # energy roll-up at full precision
    energy = _energy_rollup(levels_out, stats, xml)
    summary = stats["summary"]
    fixture = {
        "name": name,
        "source": {
            "repo": REPO_NAME, "commit": src.commit, "ref_dir": ref_dir,
            "files": [f"{ref_dir}/{p}" for p in (
                "parsed-processed-input.yaml", f"{prefix}.stats.txt", f"{prefix}.map.txt",
                f"{prefix}.map+stats.xml", f"{prefix}.ERT.yaml")] +
            ([map_yaml_path] if mapping_input_src == map_yaml_path else []),
            "tool": prefix,
            "generated_by": "benchmarks/timeloop_ref/extract.py",
        },
        "problem": problem,
        "architecture": [{k: v for k, v in lv.items()
                          if k not in ("reference", "specs_txt", "loop_nest_txt")}
                         for lv in levels_out],
        "mapping": {"levels_outer_to_inner": mapping_levels,
                    "map_txt": map_text.splitlines(),
                    "input": mapping_input, "input_source": mapping_input_src,
                    "input_permutation_order": "innermost first (Timeloop mapping syntax)"},
        "reference": {
            "levels_outer_to_inner": [{"name": lv["name"], "kind": lv["kind"],
                                       "reference": lv["reference"], "specs_txt": lv["specs_txt"],
                                       "loop_nest_txt": lv["loop_nest_txt"]}
                                      for lv in levels_out],
            "networks_xml": [_by_tensor(n, tensors) for n in xml["networks"]],
            "summary_txt": summary,
            "cycles": summary.get("Cycles"),
            "energy": energy,
            "ert": ert,
        },
    }
    fixture["reference"]["energy"]["ert_reconstruction_per_instance"] = ert_reconstruction(fixture)
    return fixture


def _by_tensor(rec: dict, tensors: list[str]) -> dict:
    return {k: (dict(zip(tensors, v)) if isinstance(v, list) and len(v) == len(tensors) else v)
            for k, v in rec.items()}


def ert_reconstruction(fx: dict) -> dict:
    """Recompute each level's energy from the counts and the ERT (dense formula).

    storage, per tensor and instance:
      (ceil(reads/B)*E_read + ceil(fills/B)*E_write + ceil(updates/B)*E_update)
      (+ XML compression_counts*E_compression_count + decompression_counts*E_decompression_count)
      * utilized_clusters / utilized_instances            (B = block size)
    compute: actual computes * E_compute.
    Sparse formats (metadata, (de)compression) are not modelled: those entries
    simply show a mismatch.
    """
    ert: dict[str, dict[str, float]] = {}
    for r in fx["reference"]["ert"]:
        ert.setdefault(r["component"], {}).setdefault(r["action"], r["energy_pJ"])
    out = {}
    for lv in fx["reference"]["levels_outer_to_inner"]:
        acts = ert.get(lv["name"], {})
        if lv["kind"] == "compute":
            x = lv["reference"]["xml"]
            pred = x["random_computes"] * acts.get("compute", 0.0)
            out[lv["name"]] = _rec(pred, x["energy"])
            continue
        bs = _first(lv["specs_txt"], "Block size", "Data block size") or 1
        for t, td in lv["reference"]["tensors"].items():
            c = td["counts"]
            pred = (math.ceil(c["reads_per_instance"] / bs) * acts.get("read", 0.0)
                    + math.ceil(c["fills_per_instance"] / bs) * acts.get("write", 0.0)
                    + math.ceil(c["updates_per_instance"] / bs) * acts.get("update", 0.0)
                    + td["xml"].get("compression_counts", 0) * acts.get("compression_count", 0.0)
                    + td["xml"].get("decompression_counts", 0) * acts.get("decompression_count", 0.0))
            ui, uc = c["utilized_instances_max"], c["utilized_clusters_max"]
            if ui and uc:
                pred *= uc / ui
            out[f"{lv['name']}.{t}"] = _rec(pred, c["energy_pJ_per_instance"])
    return out


def _rec(pred: float, ref: float) -> dict:
    rel = abs(pred - ref) / max(abs(ref), 1e-12) if ref else abs(pred)
    return {"predicted_pJ": pred, "reference_pJ": ref, "rel_error": rel,
            "matches": rel <= 1e-5}


def _factors(loops: list[dict], dims: list[str]) -> dict[str, int]:
    f = {d: 1 for d in dims}
    for lp in loops:
        f[lp["dim"]] *= lp["end"] - lp["start"]
    return f


def _energy_rollup(levels_out: list[dict], stats: dict, xml: dict) -> dict:
    """Sum Timeloop's per-level energies (full precision) and compare to the summary."""
    per_level: dict[str, float] = {}
    leakage: dict[str, float] = {}
    for lv in levels_out:
        if lv["kind"] == "compute":
            per_level[lv["name"]] = float(lv["reference"]["xml"]["energy"])
        else:
            per_level[lv["name"]] = sum(
                t["counts"].get("derived_totals", {}).get("energy_pJ_total", 0.0) or 0.0
                for t in lv["reference"]["tensors"].values())
            leak = lv["specs_txt"].get("Leakage energy (total)")
            if leak:
                leakage[lv["name"]] = leak
    net = sum(sum(v for v in n.get("energy", []) if isinstance(v, (int, float)))
              for n in xml["networks"])
    dynamic = sum(per_level.values())
    leak_total = sum(leakage.values())
    summ = stats["summary"]
    tables = [k for k, v in summ.items() if isinstance(v, dict) and k.startswith("fJ/")]
    table = tables[0] if tables else None
    computes = _first(summ, "Algorithmic Computes", "Computes") if table == "fJ/Algorithmic-Compute" \
        else _first(summ, "Computes", "Actual Computes")
    table_total = (summ[table]["Total"] * computes / 1000.0
                   if table and computes is not None and "Total" in summ[table] else None)
    return {"dynamic_pJ_by_level": per_level, "leakage_pJ_by_level_txt": leakage,
            "network_pJ_xml": net, "dynamic_pJ_total": dynamic,
            "leakage_pJ_total": leak_total,
            "total_pJ": dynamic + leak_total + net,
            "summary_energy_uJ_txt": summ.get("Energy"),
            "summary_table": table, "summary_table_total_pJ": table_total,
            "note": "dynamic = sum over levels/tensors of XML per-instance energy x utilized "
                    "instances (+ compute energy); total = dynamic + printed leakage + network; "
                    "summary_table_total_pJ = stats.txt fJ/(Algorithmic-)Compute 'Total' x "
                    "computes (each entry rounded to 0.01 fJ)."}


# --------------------------------------------------------------------------- checks
def check_fixture(fx: dict) -> list[str]:
    """Internal consistency: XML vs stats.txt counts, energies, map.txt vs factors."""
    errs: list[str] = []
    prob = fx["problem"]
    # mapping covers the problem exactly (product of all factors == bound)
    tot = {d: 1 for d in prob["dimensions"]}
    for m in fx["mapping"]["levels_outer_to_inner"]:
        for d in prob["dimensions"]:
            tot[d] *= m["temporal_factors"][d] * m["spatial_factors"][d]
    if tot != prob["bounds"]:
        errs.append(f"mapping factors {tot} != bounds {prob['bounds']}")
    e = fx["reference"]["energy"]
    if e["summary_table_total_pJ"] is not None:
        nlev = len(fx["reference"]["levels_outer_to_inner"])
        comp = e["summary_table_total_pJ"] / max(fx["reference"]["summary_txt"][e["summary_table"]]["Total"], 1e-30) * 1000
        tol = comp * 0.005e-3 * (nlev + 1) + 0.005 * nlev + 1e-6 * e["total_pJ"]
        if abs(e["total_pJ"] - e["summary_table_total_pJ"]) > tol:
            errs.append(f"energy total {e['total_pJ']:.3f} pJ != summary table {e['summary_table_total_pJ']:.3f} pJ")
    for lv in fx["reference"]["levels_outer_to_inner"]:
        if lv["kind"] == "compute":
            x = lv["reference"]["xml"]
            comp = _first(lv["reference"]["stats_txt"], "Computes (total)",
                          "Algorithmic Computes (total)")
            if comp != x.get("algorithmic_computes"):
                errs.append(f"{lv['name']}: computes txt {comp} != xml {x.get('algorithmic_computes')}")
            if comp != prob["algorithmic_macs"]:
                errs.append(f"{lv['name']}: computes {comp} != product of bounds")
            continue
        for t, td in lv["reference"]["tensors"].items():
            c, s = td["counts"], td["stats_txt"]
            e_txt = s.get("Energy (per-instance)")
            e_xml = c.get("energy_pJ_per_instance")
            if e_txt is not None and e_xml is not None and abs(e_txt - e_xml) > 0.006 + 1e-9 * abs(e_xml):
                errs.append(f"{lv['name']}.{t}: energy txt {e_txt} != xml {e_xml}")
            e_tot = s.get("Energy (total)")
            d_tot = c["derived_totals"].get("energy_pJ_total")
            if e_tot is not None and d_tot is not None and abs(e_tot - d_tot) > 0.006 + 1e-7 * abs(d_tot):
                errs.append(f"{lv['name']}.{t}: energy total txt {e_tot} != per-instance*instances {d_tot}")
    return errs


def xml_txt_count_check(fx: dict, src: GitSource) -> list[str]:
    """The XML 'random_*' arrays must equal the printed (actual) per-instance counts."""
    errs = []
    xml = parse_stats_xml(src.read(f"{fx['source']['ref_dir']}/{fx['source']['tool']}.map+stats.xml"))
    by = {lv["name"]: lv for lv in xml["levels"]}
    tensors = [d["name"] for d in fx["problem"]["data_spaces"]]
    for lv in fx["reference"]["levels_outer_to_inner"]:
        if lv["kind"] != "storage":
            continue
        xl = by[lv["name"]]
        for t, td in lv["reference"]["tensors"].items():
            i = tensors.index(t)
            for k in ("reads", "fills", "updates"):
                v = td["counts"][f"{k}_per_instance"]
                if v != xl[f"random_{k}"][i]:
                    errs.append(f"{lv['name']}.{t}.{k}: txt {v} != xml random_{k} {xl[f'random_{k}'][i]}")
    return errs


# --------------------------------------------------------------------------- driver
def fixture_name(ref_dir: str) -> str:
    parts = ref_dir.split("/")
    ri = next(i for i, p in enumerate(parts) if re.fullmatch(r"ref[-_]outputs?", p))
    head, tail = parts[:ri], [p for p in parts[ri + 1:] if p != "default_problem"]
    if "sparseloop" in head:
        base = "sparseloop-" + head[-1]
    elif "example_designs" in head:
        base = "design-" + head[-1]
    elif head[-1] == "timeloop+accelergy":
        base = "tutorial-timeloop_accelergy"
    else:
        base = "tutorial-" + head[-1]
    return re.sub(r"[^A-Za-z0-9._-]", "_", "-".join([base] + tail))


def discover(src: GitSource) -> list[tuple[str, str, str]]:
    out = []
    for f in src.files():
        m = STATS_RE.match(f)
        if m and REF_DIR_RE.search(m.group("dir") + "/"):
            out.append((fixture_name(m.group("dir")), m.group("dir"), m.group("prefix")))
    return sorted(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", required=True, help="clone or bare git dir of " + REPO_NAME)
    ap.add_argument("--commit", default="HEAD")
    ap.add_argument("--out", default="tests/fixtures/timeloop")
    ap.add_argument("--only", nargs="*", help="fixture names to (re)generate")
    ap.add_argument("--check", action="store_true",
                    help="regenerate in memory and compare with the files in --out")
    args = ap.parse_args(argv)
    src = GitSource(args.repo, args.commit)
    out_dir = Path(args.out)
    bad = 0
    for name, ref_dir, prefix in discover(src):
        if args.only and name not in args.only:
            continue
        try:
            fx = build_fixture(src, ref_dir, prefix, name)
        except (ExtractError, KeyError, ValueError) as exc:
            print(f"SKIP {name}: {ref_dir}: {exc}")
            continue
        errs = check_fixture(fx) + xml_txt_count_check(fx, src)
        for e in errs:
            print(f"INCONSISTENT {name}: {e}")
        bad += bool(errs)
        text = json.dumps(fx, indent=1, sort_keys=False) + "\n"
        path = out_dir / f"{name}.json"
        if args.check:
            same = path.exists() and path.read_text() == text
            print(("OK   " if same else "DIFF ") + str(path))
            bad += not same
            continue
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
        e = fx["reference"]["energy"]
        print(f"wrote {path}  cycles={fx['reference']['cycles']}  "
              f"dynamic={e['dynamic_pJ_total']:.2f} pJ  summary={e['summary_energy_uJ_txt']} uJ")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
