"""Command line of the toolkit.

  python run_search.py --track runtime                  search (the default command)
  python run_search.py profile imdn rfdn rlfn cfg.json  the challenge's model summary for any config
  python run_search.py evaluate models/x.py:Net --weights model_zoo/x.pth   the kit's test_demo.py on one model
  python run_search.py report --study NAME              tables and plots of a stored study
  python run_search.py export --study NAME --top 3      standalone model files of the best trials
"""

from __future__ import annotations

import omp_wait  # noqa: F401  (first: OpenMP's wait policy, before torch is imported)
import argparse
import dataclasses
import sys
from pathlib import Path

# Each command and its one line in `--help`.
COMMANDS = {
    "search": "search architectures for a track (the default command: its options are listed above)",
    "profile": "the challenge's model summary (params, FLOPs, activations, #conv, latency, memory) of any model",
    "evaluate": "the kit's test_demo.py on one trained model: challenge PSNR, complexity, latency ratio, memory",
    "report": "tables, plots and report.html of a stored study, without training anything",
    "export": "standalone model files (torch only), weights, config, metrics and ONNX of a study's best trials",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv and argv[0] in COMMANDS else "search"
    args = (argv[1:] if argv and argv[0] in COMMANDS else argv)
    parser = PARSERS[command]()
    options = parser.parse_args(args)
    quiet_libraries()
    try:
        return HANDLERS[command](options)
    except KeyboardInterrupt:
        return 130
    except (ValueError, OSError, LookupError) as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 2


def quiet_libraries() -> None:
    """Our one line per trial replaces Optuna's; its warnings (failed trials) stay."""
    import warnings

    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def shape(text: str) -> tuple[int, int, int]:
    try:
        c, h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected CxHxW like 3x64x64, got {text!r}") from None
    if min(c, h, w) <= 0:
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return c, h, w


# The re-evaluation's options, folded into promotion: refused with one line that says what replaced them.
REPLACED_BY_PROMOTION = ("--reeval-top", "--reeval-seeds", "--reeval-budget")


# --dtype spellings of profile and evaluate -> the latency dtype's name (fp16 also marks model files as float16).
PRECISIONS = {"fp32": "fp32", "float32": "fp32", "fp16": "fp16", "float16": "fp16", "half": "fp16",
              "bf16": "bf16", "bfloat16": "bf16"}
DTYPE_HELP = ("fp32 (the challenge's; default) | fp16 | bf16: the precision models are timed in. A model file or kit "
              "entry given fp16 is one written for half precision (its manifest's dtype float16 says so too): "
              "loaded and run in half, PSNR included, as its kit runs it on a GPU; on a CPU in fp32 through its own "
              "dtype switch, said in the record (or refused in one line when its forward cannot)")


def precision(text: str) -> str:
    try:
        return PRECISIONS[text.lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(f"expected fp32, fp16 or bf16, got {text!r}") from None


KIT_RUNTIME_HELP = ("also time as the kits' test_demo.py does: each validation LR image at its own size, batch 1, "
                    "fp32, no warm-up, mean (the challenge's figure; the search uses the warm median ratio)")
EDITION_HELP = "the NTIRE ESR edition whose rules apply: 2022 (default) ... 2026"


def commands_help() -> str:
    """The epilog of `run_search.py --help`: every command with its line (`run_search.py COMMAND --help`: its options)."""
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {text}" for name, text in COMMANDS.items()]
    return "commands (run_search.py COMMAND --help for their options):\n" + "\n".join(lines)


def search_parser() -> argparse.ArgumentParser:
    from search.settings import SAMPLERS, SearchSettings
    d = SearchSettings()
    p = argparse.ArgumentParser(prog="run_search.py", description="Search x4 SR architectures for an NTIRE track.",
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=commands_help())
    p.add_argument("--edition", default=d.edition, help=EDITION_HELP)
    p.add_argument("--track", default=d.track, help="runtime (main) | complexity | overall")
    p.add_argument("--space", default=d.space, help="imdn | mixed")
    p.add_argument("--sampler", default=d.sampler, help=" | ".join(SAMPLERS))
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--trials", type=int, default=d.trials,
                   help="trials in the study, the edition's references included (2022: 4, so 5 at least)")
    p.add_argument("--budget", default=d.budget, help="proxy training preset: smoke | quick | standard | full")
    p.add_argument("--iterations", type=int, help="override the budget's training steps")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--patch", type=int, help="LR patch size")
    p.add_argument("--lr", type=float)
    p.add_argument("--data", help="a DIV2K or DIV2K_LSDIR folder (default: the photographs embedded in scikit-image)")
    p.add_argument("--valid-limit", type=int, help="validate on the first N validation images of --data")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--latency-input", type=shape, help="CxHxW of latency/memory inputs (default per device)")
    p.add_argument("--dtype", default=d.dtype, help="fp32 (the challenge) | fp16 | bf16 for latency")
    p.add_argument("--floor", type=float,
                   help="PSNR floor [dB] on the challenge's published scale (default: the edition's validation floor)")
    p.add_argument("--predictor", default=d.predictor,
                   help="features of the PSNR predictor: proxy+size (default) | proxy+size+acts | curve+size | curve | "
                        "proxy | size")
    p.add_argument("--calibrate-with", metavar="KIT_DIR",
                   help="a challenge kit folder (layout of ntire-kits) whose entries add calibration points "
                        "(every entry's model file is imported: its code runs)")
    p.add_argument("--reference", dest="extra_references", action="append", default=[], metavar="MODEL",
                   help="a model measured beside the references, drawn and ranked with the trials (repeatable): a "
                        "config JSON, path/to/models/x.py:Factory (its code runs) or EDITION:ID with --kit")
    p.add_argument("--kit", help="a challenge kit folder (layout of ntire-kits) for EDITION:ID references")
    p.add_argument("--no-early-stop", dest="early_stop", action="store_false")
    p.add_argument("--early-stop-margin", type=float, default=d.early_stop_margin)
    p.add_argument("--confirm-minutes", type=float, default=d.confirm_minutes, metavar="M",
                   help="minutes this study may spend promoting its leading undecided candidates through longer "
                        "trainings (summed over its runs: rerun with a larger M to go on; 0: no promotion)")
    p.add_argument("--reduction-factor", type=int, default=d.reduction_factor, metavar="ETA",
                   help="rung k trains ETA**k times the budget's steps; the top 1/ETA of a rung may move up")
    p.add_argument("--max-rung", type=int, default=d.max_rung, help="the highest promotion rung")
    for gone in REPLACED_BY_PROMOTION:
        p.add_argument(gone, help=argparse.SUPPRESS)
    p.add_argument("--study-name", help="default: <track>-<space>-<budget>")
    p.add_argument("--storage", help="Optuna storage URL (sqlite:///..., postgresql://..., journal:PATH)")
    p.add_argument("--results", default=d.results, help="folder of run outputs")
    p.add_argument("--workers", type=int, default=d.workers, help="processes sharing the study")
    p.add_argument("--no-export", dest="export_winner", action="store_false")
    p.add_argument("--timeout", type=float, help="seconds after which no new trial starts")
    return p


def run_search_command(options: argparse.Namespace) -> int:
    from search.runner import run_search
    from search.trial_loop import SearchStalled
    from search.settings import SearchSettings
    given = [flag for flag in REPLACED_BY_PROMOTION if getattr(options, flag[2:].replace("-", "_")) is not None]
    if given:
        raise ValueError(f"{given[0]} was replaced by promotion through longer trainings: --confirm-minutes M (its "
                         f"time), --reduction-factor ETA and --max-rung K (the ladder); see README 'Promotion'")
    values = {k: v for k, v in vars(options).items() if f"--{k.replace('_', '-')}" not in REPLACED_BY_PROMOTION}
    settings = SearchSettings(**values)
    try:
        summary = run_search(settings)
    except SearchStalled as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0 if summary.trials else 1


def profile_parser() -> argparse.ArgumentParser:
    from editions import DEFAULT_EDITION
    p = argparse.ArgumentParser(prog="run_search.py profile",
                                description="Params, FLOPs, activations, #conv, latency and memory of models.")
    p.add_argument("models", nargs="+", help="reference names (imdn, rfdn, rlfn, rlfn_prune, imdn_paper, span), "
                                             "config JSON files, path/to/models/x.py:Factory, or EDITION:ID with --kit")
    p.add_argument("--edition", default=DEFAULT_EDITION, help=EDITION_HELP + "; sets the baseline of the "
                   "latency ratios, the FLOPs counter and the published figures shown")
    p.add_argument("--json", action="store_true", help="print a JSON list of records")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--input", type=shape, help="CxHxW of the latency/memory input (default per device)")
    p.add_argument("--dtype", type=precision, help=DTYPE_HELP)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--repeats", type=int, help="timed calls per model")
    p.add_argument("--kit-runtime", action="store_true", help=KIT_RUNTIME_HELP)
    p.add_argument("--data", help="a DIV2K or DIV2K_LSDIR folder: memory also the challenge's way (max over its "
                                  "validation set), and the images --kit-runtime times (default: the embedded "
                                  "photographs)")
    p.add_argument("--valid-limit", type=int, help="with --data: the first N validation images")
    add_model_options(p)
    return p


def add_model_options(p: argparse.ArgumentParser) -> None:
    """The options that complete a model file or kit entry named on the command line (its loading recipe)."""
    g = p.add_argument_group("model files (path/to/models/x.py:Factory) and kit entries (EDITION:ID)",
                             "loading a model file runs its code, as the kits' test_demo.py does; for a kit entry, "
                             "the options given replace its manifest's")
    g.add_argument("--kit", help="a challenge kit folder (layout of ntire-kits): resolves EDITION:ID entries, and "
                                 "gives the zoo references their official weights in evaluate")
    g.add_argument("--model-args", help="constructor arguments as JSON (a list or an object)")
    g.add_argument("--weights", help="a checkpoint of the model (state dict, or nested under --state-key)")
    g.add_argument("--state-key", help="the checkpoint's entry holding the state dict (e.g. params, net)")
    g.add_argument("--strip-prefix", help="removed from every key of the state dict (e.g. module.)")
    g.add_argument("--no-strict", dest="strict", action="store_false", default=None,
                   help="load_state_dict(strict=False), as kits load some entries (extra or missing keys are said)")
    g.add_argument("--after-load", metavar="NAME", help="a method called after loading on every module that has "
                                                        "it, as kits do (e.g. switch_deploy, fuse, reparameterize)")
    g.add_argument("--data-range", type=float, help="1 (the model takes [0, 1]; default) or 255")
    g.add_argument("--cpu-shim", action="store_true", default=None,
                   help="make .cuda() a no-op while a model file's code runs on a machine without CUDA, as users of "
                        "the kits do (off by default; the record says so)")


def model_options(options: argparse.Namespace):
    from spaces.resolve import ModelOptions
    native = "float16" if options.dtype == "fp16" else None  # fp32 and bf16 are latency dtypes only
    return ModelOptions(kit=options.kit, model_args=options.model_args, weights=options.weights,
                        state_key=options.state_key, strip_prefix=options.strip_prefix, data_range=options.data_range,
                        strict=options.strict, after_load=options.after_load, dtype=native, cpu_shim=options.cpu_shim)


def latency_dtype(dtype: str | None, archs: list, device) -> str:
    """The dtype the evaluators time in, checked before any work: fp32 unless given; fp16 on a CPU for model files
    alone is fp32 (their recipe runs them in fp32 there), and is refused with a config among them (emulated)."""
    from evaluators.latency import resolve_dtype
    from spaces import ModelFile
    dtype = dtype or "fp32"
    if dtype == "fp16" and device.type == "cpu" and all(isinstance(arch, ModelFile) for arch in archs):
        return "fp32"
    resolve_dtype(dtype, device)
    return dtype


def model_prints_to_stderr():
    """While a command builds and measures: the models' own prints go to stderr, so that stdout holds the
    command's output alone (the JSON of --json)."""
    import contextlib
    return contextlib.redirect_stdout(sys.stderr)


def evaluate_parser() -> argparse.ArgumentParser:
    from editions import DEFAULT_EDITION
    p = argparse.ArgumentParser(prog="run_search.py evaluate",
                                description="The kit's test_demo.py on one trained model: the challenge's PSNR on "
                                            "a DIV2K or DIV2K_LSDIR folder or the embedded photographs, complexity, "
                                            "latency ratio to the edition's baseline and memory.")
    p.add_argument("model", help="a reference name, a config JSON (with --weights), path/to/models/x.py:Factory, "
                                 "or EDITION:ID with --kit")
    p.add_argument("--data", help="a DIV2K or DIV2K_LSDIR folder (default: the embedded photographs)")
    p.add_argument("--valid-limit", type=int, help="with --data: the first N validation images")
    p.add_argument("--edition", default=DEFAULT_EDITION, help=EDITION_HELP)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--input", type=shape, help="CxHxW of the latency/memory input (default per device)")
    p.add_argument("--dtype", type=precision, help=DTYPE_HELP + "; a config's PSNR is fp32 whatever the dtype")
    p.add_argument("--kit-runtime", action="store_true", help=KIT_RUNTIME_HELP)
    p.add_argument("--json", action="store_true", help="print one JSON record")
    add_model_options(p)
    return p


def run_evaluate_command(options: argparse.Namespace) -> int:
    import json

    from data.embedded import SOURCE as EMBEDDED
    from editions import get_edition
    from evaluators.profile import format_profile_table
    from spaces.recipe import describe
    edition = get_edition(options.edition)
    if options.valid_limit is not None and (options.data is None or options.valid_limit < 1):
        raise ValueError("--valid-limit needs --data and a positive count")
    with model_prints_to_stderr():
        label, record, data = evaluate_record(options, edition=edition)
    if options.json:
        print(json.dumps(record, indent=2))
        return 0
    where = data.describe_valid() if data.source == EMBEDDED else f"{data.describe_valid()} in {data.source}"
    print(f"{label}: PSNR {record['psnr']:.2f} dB on {where} "
          f"(bicubic {record['bicubic_psnr']:.2f} dB; RGB, uint8, 4-pixel border, as the challenge; data range "
          f"{record['data_range']:g}); {edition.name}, baseline {edition.baseline}")
    print(f"{label}: loaded with {describe(record['recipe'])}")
    print(format_profile_table([record]))
    if options.kit_runtime:
        print(format_kit_runtime([record]))
    return 0


def evaluate_record(options: argparse.Namespace, *, edition) -> tuple:
    """(label, record, data) of evaluate: the model loaded by its recipe, PSNR on the validation images (the kits'
    order: the validation forwards first), then counted, timed and measured."""
    import train_proxy
    from data import load_dataset, to_tensor
    from evaluators.device import resolve_device
    from evaluators.profile import profile_models
    from spaces import build_model, check_x4, get_reference, inference_form
    from spaces.resolve import check_options_apply, load_trained, resolve_architecture
    extra = model_options(options)
    label, arch = resolve_architecture(options.model, options=extra)
    check_options_apply(dataclasses.replace(extra, dtype=None), [arch], config_weights=True)  # configs' latency dtype
    device = resolve_device(options.device)
    dtype = latency_dtype(options.dtype, [arch], device)
    data = load_dataset(options.data, valid_limit=options.valid_limit, edition=edition)
    prepared = load_trained(arch, label=label, options=extra, device=device)
    model = prepared.model
    check_x4(model, label=label)
    psnr = train_proxy.validation_psnr(model, data.valid, device=device)
    bicubic = train_proxy.bicubic_baseline_psnr(data)
    models = [(label, inference_form(model))]
    images = [to_tensor(pair.lr) for pair in data.valid]
    record, = profile_models(models, reference=inference_form(build_model(get_reference(edition.baseline))),
                             counter=edition.counter, device=device, input_shape=options.input, dtype=dtype,
                             memory_images=images)
    if options.kit_runtime:
        add_kit_runtime([record], models, images=images, device=device)
    record.update(psnr=psnr, bicubic_psnr=bicubic, valid={**data.to_dict(), "valid_set": data.valid_set},
                  edition=edition.year, recipe=prepared.record,
                  data_range=getattr(arch, "data_range", getattr(arch, "input_scale", 1.0)))
    return label, record, data


def run_profile_command(options: argparse.Namespace) -> int:
    import json

    from editions import get_edition
    from evaluators.profile import ROUNDS, format_profile_table
    from search.report.published import format_published, published_records
    from spaces.recipe import describe
    edition = get_edition(options.edition)
    if options.repeats is not None and options.repeats < ROUNDS:
        raise ValueError(f"--repeats {options.repeats} is too few: the timed calls are split over {ROUNDS} rounds "
                         f"alternating with the baseline, one call each at least; give --repeats {ROUNDS} or more")
    with model_prints_to_stderr():
        records = profile_records(options, edition=edition)
    # The baseline's figures are always shown: they are what the ratios and limits are measured against.
    published = published_records(edition, list(dict.fromkeys([r["name"] for r in records] + [edition.baseline])))
    if options.json:
        print(json.dumps([{**record, "published": published.get(record["name"])} for record in records], indent=2))
        return 0
    print(f"{edition.name}: baseline {edition.baseline}, FLOPs by {edition.counter.value}, "
          f"judged on {edition.gpu or 'a GPU the facts do not record'}")
    print(format_profile_table(records))
    for record in records:
        if record["recipe"]:
            print(f"{record['name']}: loaded with {describe(record['recipe'])}")
    if options.kit_runtime:
        print(format_kit_runtime(records))
    if published:
        print(format_published(edition, published))
    return 0


def profile_records(options: argparse.Namespace, *, edition) -> list:
    """profile's records: each model as the kits measure it (a model file after its recipe, with its weights when
    it names them), counted, timed beside the edition's baseline and measured."""
    from evaluators.device import resolve_device
    from evaluators.profile import profile_models
    from spaces import build_model, check_x4, get_reference, inference_form, measured_form
    from spaces.resolve import check_options_apply, resolve_architecture
    extra = model_options(options)
    resolved = [resolve_architecture(item, options=extra) for item in options.models]
    check_options_apply(dataclasses.replace(extra, dtype=None), [arch for _, arch in resolved],
                        config_weights=False)  # --dtype is also the configs' latency dtype
    device = resolve_device(options.device)
    dtype = latency_dtype(options.dtype, [arch for _, arch in resolved], device)
    kwargs = {"repeats": options.repeats} if options.repeats is not None else {}
    images = None
    if options.data is not None or options.kit_runtime:
        from data import load_dataset, to_tensor
        if options.valid_limit is not None and options.valid_limit < 1:
            raise ValueError(f"--valid-limit must be positive, got {options.valid_limit}")
        valid = load_dataset(options.data, valid_limit=options.valid_limit, edition=edition).valid
        images = [to_tensor(pair.lr) for pair in valid]
    if options.data is not None:
        kwargs["memory_images"] = images
    models, recipes = [], []
    for label, arch in resolved:
        prepared = measured_form(arch, device=device)
        check_x4(prepared.model, label=label)
        models.append((label, prepared.model))
        recipes.append(prepared.record or None)
    records = profile_models(models, reference=inference_form(build_model(get_reference(edition.baseline))),
                             counter=edition.counter, device=device, input_shape=options.input,
                             dtype=dtype, channels_last=options.channels_last, **kwargs)
    if options.kit_runtime:
        add_kit_runtime(records, models, images=images, device=device)
    for record, recipe in zip(records, recipes):
        record["recipe"] = recipe
    return records


def add_kit_runtime(records: list, models: list, *, images: list, device) -> None:
    """Each record gets `kit_runtime`: the kits' protocol on `images` (the validation LR images)."""
    from evaluators.kit_runtime import measure_kit_runtime
    for record, (_, model) in zip(records, models):
        record["kit_runtime"] = measure_kit_runtime(model, images, device=device).to_dict()


def format_kit_runtime(records: list) -> str:
    """One line: how the kits' protocol timed, and each model's mean."""
    first = records[0]["kit_runtime"]
    return (f"kit runtime ({first['protocol']}; {first['timer']}, {first['device_name']}, "
            f"{len(first['per_image_ms'])} images): "
            + ", ".join(f"{r['name']} {r['kit_runtime']['mean_ms']:.2f} ms" for r in records))


def study_parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"run_search.py {prog}", description=description)
    p.add_argument("--study", required=True, help="study name (a folder under --results)")
    p.add_argument("--storage", help="Optuna storage URL (default: SQLite under results/<study>/)")
    p.add_argument("--results", default="results")
    return p


def report_parser() -> argparse.ArgumentParser:
    p = study_parser("report", "Tables, leaderboard, plots and report.html of a stored study (read, never changed).")
    p.add_argument("--out", help="output folder (default: the study's folder, results/<study>)")
    return p


def export_parser() -> argparse.ArgumentParser:
    p = study_parser("export", "Standalone model files (torch only), weights, config, metrics and ONNX.")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--top", type=int, default=1, help="the K best feasible trials of the leaderboard")
    which.add_argument("--trial", type=int, help="one trial by number")
    p.add_argument("--out", help="output folder (default: results/<study>/export, or export-<YEAR> with --edition "
                                 "another edition than the study's)")
    p.add_argument("--edition", help="the NTIRE ESR edition whose rules the metrics follow (default: the study's): "
                                     "FLOPs by its counter, latency ratio to its baseline where the study timed it, "
                                     "its score; --top still picks by the study's rules")
    return p


def stored_settings(options: argparse.Namespace):
    """The settings a stored study was created with (its track, budget, ...), for report and export."""
    import optuna

    from search.settings import SearchSettings
    from search.study import make_storage, storage_file
    # The run folder's study file: SQLite, or the journal file of a search with several workers.
    storage_url = options.storage or SearchSettings(study_name=options.study, results=options.results).storage_url
    if options.storage is None and not storage_file(storage_url).is_file():
        raise ValueError(f"no study {options.study!r} under {options.results}/ (expected {storage_file(storage_url)}); "
                         f"check --study or give --storage")
    try:
        study = optuna.load_study(study_name=options.study, storage=make_storage(storage_url, read_only=True))
    except KeyError:
        raise ValueError(f"storage {storage_url} holds no study named {options.study!r}") from None
    stored = study.user_attrs.get("settings")
    if stored is None:
        raise ValueError(f"study {options.study!r} was not created by this toolkit (no settings stored)")
    stored = {k: tuple(v) if isinstance(v, list) else v for k, v in stored.items()}
    return study, SearchSettings(**stored, study_name=options.study, storage=options.storage, results=options.results)


def run_report_command(options: argparse.Namespace) -> int:
    from search.runner import check_output_folder, finish
    study, settings = stored_settings(options)
    out = Path(options.out) if options.out else settings.run_dir
    check_output_folder(out, flag="--out")
    finish(settings.replace(confirm_minutes=0.0, export_winner=False), say=print, study=study, out_dir=out)
    return 0


def run_export_command(options: argparse.Namespace) -> int:
    from editions import get_edition
    from search.report.tables import leaderboard, references_frame, trials_frame
    from search.export.trials import export_trials
    from search.runner import check_output_folder
    from search.tracks import get_track
    study, settings = stored_settings(options)
    edition = settings.rules if options.edition is None else get_edition(options.edition)
    track = get_track(settings.track, settings.rules)
    frame = trials_frame(study, track)
    default_out = "export" if edition.year == settings.rules.year else f"export-{edition.year}"
    out = Path(options.out) if options.out else settings.run_dir / default_out
    check_output_folder(out, flag="--out")
    if options.trial is not None:
        if options.trial not in set(frame["number"]):
            raise ValueError(f"study {settings.name!r} has no trial #{options.trial}")
        numbers = [options.trial]
    else:
        if options.top <= 0:
            raise ValueError(f"--top must be positive, got {options.top}")
        board = leaderboard(frame, references_frame(study), track, edition=settings.rules)
        numbers = [int(n) for n in board.loc[board["name"] == "trial", "number"].head(options.top)]
        if not numbers:
            raise ValueError(f"study {settings.name!r} has no feasible sampled trial to export")
    export_trials(study, frame, numbers, out_dir=out, artifacts_dir=settings.run_dir / "artifacts",
                  study_edition=settings.rules, edition=edition, say=print)
    return 0


PARSERS = {"search": search_parser, "profile": profile_parser, "evaluate": evaluate_parser, "report": report_parser,
           "export": export_parser}
HANDLERS = {"search": run_search_command, "profile": run_profile_command, "evaluate": run_evaluate_command,
            "report": run_report_command,
            "export": run_export_command}

if __name__ == "__main__":
    sys.exit(main())
