"""Latency measurement quality: how repeatable are the latencies the search ranks candidates by?

1. 10 repeated measurements of the IMDN baseline (each the median of the evaluator's timed calls): their
   coefficient of variation.
2. The latency ratio to IMDN of 10 architectures (the 4 references and 6 sampled ones), measured the way the
   search measures a candidate (interleaved with IMDN), in two independent passes: Kendall tau between the two
   rankings (goal >= 0.9).
3. RLFN/IMDN, RFDN/IMDN and SPAN/IMDN on this machine.

    python3 -m bench.latency_quality                              # CPU, fp32, the search's CPU input
    python3 -m bench.latency_quality --device cuda --dtype fp16 --name latency_quality_cuda_fp16
"""

from __future__ import annotations

import argparse

import numpy as np

from bench.common import median_and_spread, rank_agreement, write_result
from bench.proxy_fidelity import REFERENCES, sample_architectures
from editions import get_edition
from evaluators.complexity import count_params
from evaluators.latency import measure_latency
from search.candidate import Measurement, measure_speed
from spaces import build_model, get_reference, inference_form


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "bf16"])
    parser.add_argument("--repeats", type=int, default=10, help="repeated IMDN measurements")
    parser.add_argument("--sample-seed", type=int, default=0)
    parser.add_argument("--name", default="latency_quality")
    args = parser.parse_args(argv)
    measurement = Measurement.of_edition(get_edition(2022), device=args.device, latency_input=None, dtype=args.dtype)
    baseline = measurement.baseline()

    imdn = [measure_latency(baseline, device=args.device, dtype=args.dtype) for _ in range(args.repeats)]
    medians = [report.median_ms for report in imdn]
    cv = float(np.std(medians, ddof=1) / np.mean(medians))
    print(f"IMDN x{args.repeats}: median {np.median(medians):.2f} ms, CV {cv:.3%} "
          f"({imdn[0].input_shape}, {imdn[0].repeats} timed calls each)")

    archs = [(name, get_reference(name)) for name in REFERENCES]
    archs += sample_architectures(count=6, space="mixed", seed=args.sample_seed)
    passes = []
    for _ in range(2):
        passes.append([measure_speed(config, measurement=measurement, baseline=baseline)["latency_ratio"]
                       for _, config in archs])
    agreement = rank_agreement(passes[0], passes[1])
    rows = [{"label": label, "arch": config.describe(), "ratio_pass1": first, "ratio_pass2": second}
            for (label, config), first, second in zip(archs, *passes)]
    for row in rows:
        print(f"{row['label']:<10} {row['arch']:<48} {row['ratio_pass1']:.3f} {row['ratio_pass2']:.3f}")
    print(f"Kendall tau between the passes: {agreement['kendall_tau']:.3f}")
    ratios = {name: float(np.mean([row["ratio_pass1"], row["ratio_pass2"]])) for name, row in
              zip([label for label, _ in archs], rows) if name in REFERENCES}
    print("ratios to IMDN: " + ", ".join(f"{name} {value:.3f}" for name, value in ratios.items()))
    write_result(args.name, {
        "settings": {**vars(args), "latency_settings": {k: v for k, v in imdn[0].to_dict().items()
                                                        if k != "samples_ms"}},
        "imdn_repeats_ms": medians, "imdn": {**median_and_spread(medians), "cv": cv},
        "imdn_within_iqr_ms": [report.iqr_ms for report in imdn],
        "ranking": {"rows": rows, **agreement}, "reference_ratios": ratios,
        "params": {label: count_params(inference_form(build_model(config))) for label, config in archs},
    })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
