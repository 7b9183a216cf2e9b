"""Command line: `python -m divcoeff list-zenodo <record>`, `python -m divcoeff list-hf <repo>` and
`python -m divcoeff select --matrix <domains.tsv> --domains k --select max|min|random`.

`select` prints the chosen sets of k domains (one a line, best first) with the coefficient their
mixture predicts on a domain matrix (rule domain_distances; docs/formats.md section 5b): the
data-selection tool the study motivates.

Both print checkpoint-sheet rows (TSV, header first) for the .pt/.pth/.ckpt files found, with
the full file key as uri (several files may be called ckpt.pt) and the checksum; family and
train_set come from the key where it shows them and are FILL-IN where it does not (the sheet
refuses that value until someone fills it). A summary and the rows to fill in go to stderr, so
that `python -m divcoeff list-zenodo 8247898 --no-header >> config/checkpoints.tsv` appends rows only.
`list-zenodo --members` also lists the checkpoint files inside the record's zip/tar archives (each
downloaded once to a temporary folder): uri `<record>/<archive key>#<member path>`, checksum the
member's md5 (divcoeff.fetch.zenodo_members).
"""
from __future__ import annotations

import argparse
import sys

from .fetch.errors import FetchError
from .fetch.listing import CHECKPOINT_EXTENSIONS, UNKNOWN, hf_rows, to_tsv, zenodo_member_rows, zenodo_rows
from .settings import fetch_settings


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--family", default="", choices=["", "pt", "maml"],
                   help="family for every row (default: from each file key, FILL-IN where it does not say)")
    p.add_argument("--arch", default="resnet12_rfs", choices=["resnet12", "resnet12_rfs", "resnet12_l2l"],
                   help="arch for every row (default: resnet12_rfs, the published files' layout)")
    p.add_argument("--train-set", default="",
                   help="train_set for every row (default: from each file key, FILL-IN where it does not say)")
    p.add_argument("--prefix", default="", help="prefix for the row names")
    p.add_argument("--ext", action="append", help=f"file endings to list (default: {' '.join(CHECKPOINT_EXTENSIONS)})")
    p.add_argument("--no-header", action="store_true", help="rows only, to append to an existing sheet")
    p.add_argument("--retries", type=int, default=4)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per request")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m divcoeff", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    z = sub.add_parser("list-zenodo", help="sheet rows for the checkpoint files of a Zenodo record")
    z.add_argument("record", help="record id, e.g. 8247898")
    zenodo_url = fetch_settings().zenodo_url
    z.add_argument("--base-url", default=zenodo_url, help=f"Zenodo (or mirror) base URL (default {zenodo_url})")
    z.add_argument("--members", action="store_true",
                   help="also list the checkpoint files inside the record's zip/tar archives (downloads each "
                        "archive to a temporary folder; rows point inside it: <record>/<archive key>#<member>)")
    _common(z)
    h = sub.add_parser("list-hf", help="sheet rows for the checkpoint files of a Hugging Face Hub model repo")
    h.add_argument("repo", help="repo id, <namespace>/<name>")
    h.add_argument("--revision", default="main", help="branch, tag or commit (rows pin the commit it resolves to)")
    h.add_argument("--endpoint", default=None, help="Hub endpoint (default: $HF_ENDPOINT or https://huggingface.co)")
    _common(h)
    s = sub.add_parser("select", help="the k domains whose mixture has the highest/lowest predicted coefficient")
    s.add_argument("--matrix", required=True, help="a domain matrix, e.g. results/diversity/glyphs-domains.tsv")
    s.add_argument("--domains", type=int, required=True, help="k, the number of domains in a set")
    s.add_argument("--select", default="max", choices=["max", "min", "random"])
    s.add_argument("--top", type=int, default=1, help="print the best N sets (exact search only)")
    s.add_argument("--pool", default=None, help="comma-separated domains to choose from (default: all of the matrix)")
    s.add_argument("--exact-limit", type=int, default=None,
                   help="search every set up to this many combinations, else greedily (default: domains.exact_limit)")
    s.add_argument("--seed", type=int, default=0, help="select random: the seed of the draw")
    s.add_argument("--draw", type=int, default=0, help="select random: which draw")
    return p


def select_main(args) -> int:
    from .domains import DomainMatrixError, read_matrix
    from .settings import DomainSettings
    from .selection import SelectionError, select_domains

    limit = args.exact_limit or DomainSettings.from_config({}).exact_limit
    pool = [p.strip() for p in args.pool.split(",") if p.strip()] if args.pool else None
    try:
        D, names = read_matrix(args.matrix)
        found = select_domains(D, names, args.domains, args.select, pool=pool, exact_limit=limit, top=args.top,
                               seed=args.seed, draw=args.draw, where="select")
    except (DomainMatrixError, SelectionError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"# {args.select} over {len(pool) if pool else len(names)} domains, k = {args.domains}, "
          f"{found[0].search} search", file=sys.stderr)
    if args.top > 1 and found[0].search != "exact":
        print(f"# --top {args.top}: {found[0].search} search gives one set", file=sys.stderr)
    print("rank\tpredicted_coefficient\tdomains")
    for i, sel in enumerate(found, 1):
        print(f"{i}\t{sel.predicted:.6f}\t{','.join(sel.domains)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "select":
        return select_main(args)
    # A one-off listing paces this process only: no pace file in the current folder.
    settings = {"retries": args.retries, "timeout_s": args.timeout, "zenodo_pace_file": None}
    keep = {"family": args.family, "arch": args.arch, "train_set": args.train_set, "prefix": args.prefix,
            "extensions": tuple(args.ext) if args.ext else CHECKPOINT_EXTENSIONS}
    try:
        if args.command == "list-zenodo":
            rows, info = zenodo_rows(args.record, {**settings, "zenodo_url": args.base_url}, **keep)
            if args.members:
                inside, members = zenodo_member_rows(args.record, {**settings, "zenodo_url": args.base_url}, **keep)
                rows += inside
                info = {**info, "n_rows": len(rows), "sizes": info["sizes"] + members["sizes"]}
                print(f"# {members['n_archives']} archive(s), {sum(s or 0 for s in members['archive_sizes']) / 1e6:.1f}"
                      f" MB, hold {members['n_rows']} checkpoint file(s)", file=sys.stderr)
                for key, why in members["skipped"].items():
                    print(f"# archive {key!r} not read: {why}", file=sys.stderr)
        else:
            rows, info = hf_rows(args.repo, args.revision, {**settings, "hf_endpoint": args.endpoint}, **keep)
    except FetchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    title = f" \"{info['title']}\"" if info["title"] else ""
    size = sum(s or 0 for s in info["sizes"]) / 1e6
    print(f"# {info['where']}{title}: {info['n_rows']} checkpoint file(s) of {info['n_files']}, {size:.1f} MB",
          file=sys.stderr)
    unclear = [r for r in rows if UNKNOWN in (r["family"], r["train_set"])]
    for r in unclear:
        which = " and ".join(c for c in ("family", "train_set") if r[c] == UNKNOWN)
        print(f"# {r['name']}: fill in {which} (the key {r['uri']!r} does not say; config/paper/README.md)",
              file=sys.stderr)
    if rows and not unclear:
        print("# family and train_set read from the file keys: check them before a run", file=sys.stderr)
    if not rows:
        print(f"# no files ending in {' '.join(keep['extensions'])}", file=sys.stderr)
    sys.stdout.write(to_tsv(rows, header=not args.no_header))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
