"""The main job without ComfyUI, mirroring the reference's ``tts_infer.py``.

    python -m stepaudio_core clone --models DIR --prompt-audio WAV --prompt-text TEXT --text TEXT --out WAV
    python -m stepaudio_core edit  --models DIR --prompt-audio WAV --prompt-text TEXT --edit-type TYPE
                                   [--edit-info OPTION] [--text NEW_TEXT] [--n-iter N] [--seed S] --out WAV

DIR holds ``Step-Audio-EditX/`` and ``Step-Audio-Tokenizer/``. Errors print one line and exit non-zero.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .errors import InputError, StepAudioError


def _read_audio(path: Path):
    import soundfile as sf
    import torch

    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises several types for unreadable files
        raise InputError(f"cannot read audio file {path}: {e}") from None
    return torch.from_numpy(data.T.copy()), int(sr)


def _write_audio(path: Path, wav, sample_rate: int) -> None:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wav.numpy(), sample_rate)


def _iteration_paths(out: Path, n: int) -> list[Path]:
    return [out] if n == 1 else [out.with_name(f"{out.stem}_iter{i}{out.suffix}") for i in range(1, n + 1)]


def _model(args):
    from .pipeline import StepAudioEditX

    return StepAudioEditX(args.models, device=args.device, dtype=args.dtype, quantization=args.quantization)


def _progress(label: str):
    start = time.perf_counter()

    def report(done: int, total: int) -> None:
        if done % 50 == 0 or done == total:
            print(f"\r{label}: {done} tokens, {time.perf_counter() - start:.1f} s", end="", file=sys.stderr, flush=True)

    return report


def cmd_clone(args) -> int:
    model = _model(args)
    wav, sr = _read_audio(args.prompt_audio)
    prompt = model.encode(wav, sr, args.prompt_text)
    audio = model.clone_long(
        prompt, args.text, language=args.language, seed=args.seed, temperature=args.temperature,
        max_seconds=args.max_seconds, on_token=_progress("clone"),
    )
    print(file=sys.stderr)
    _write_audio(args.out, audio, model.sample_rate)
    print(f"wrote {args.out} ({audio.shape[-1] / model.sample_rate:.2f} s)")
    return 0


def cmd_edit(args) -> int:
    model = _model(args)
    wav, sr = _read_audio(args.prompt_audio)
    results = model.edit_iterations(
        wav, sr, args.prompt_text or "", args.edit_type, args.edit_info, new_text=args.text, n_iter=args.n_iter,
        seed=args.seed, on_token=_progress("edit"), max_piece_seconds=args.max_piece_seconds,
        on_piece=lambda i, n: print(f"\npiece {i + 1}/{n}", file=sys.stderr, flush=True),
    )
    print(file=sys.stderr)
    for path, audio in zip(_iteration_paths(args.out, len(results)), results):
        _write_audio(path, audio, model.sample_rate)
        print(f"wrote {path} ({audio.shape[-1] / model.sample_rate:.2f} s)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .edits import EDIT_TYPES, LANGUAGE_TAGS
    from .validate import DEFAULT_PIECE_SECONDS, MIN_PIECE_SECONDS, WINDOW_SECONDS

    edits = EDIT_TYPES
    parser = argparse.ArgumentParser(prog="python -m stepaudio_core", description="Step-Audio-EditX: clone a voice or edit a recording.")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--models", required=True, type=Path, help="folder holding Step-Audio-EditX/ and Step-Audio-Tokenizer/")
        p.add_argument("--prompt-audio", required=True, type=Path, help="the reference (clone) or input (edit) recording; any rate, any channels")
        p.add_argument("--out", required=True, type=Path, help="output WAV (24 kHz mono)")
        p.add_argument("--seed", type=int, default=0, help="seed of every random draw (sampling and decoder noise); default 0")
        p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="default: CUDA, then MPS, then CPU")
        p.add_argument("--dtype", default="auto", choices=["auto", "bf16", "fp16", "fp32"], help="LM precision; auto = bf16 where supported")
        p.add_argument("--quantization", default="none", choices=["none", "int8", "nf4"], help="bitsandbytes quantisation of the LM's linear layers (CUDA)")
        p.add_argument("--debug", action="store_true", help="show the full traceback of unexpected errors")

    clone = sub.add_parser("clone", help="speak new text in the voice of a reference recording")
    common(clone)
    clone.add_argument("--prompt-text", required=True, help="transcript of the reference recording")
    clone.add_argument("--text", required=True, help="what to say; long text is split at sentence ends")
    clone.add_argument("--language", default=None, choices=list(LANGUAGE_TAGS), help="dialect/language tag prepended to the text (none for Mandarin and English)")
    clone.add_argument("--temperature", type=float, default=0.7, help="sampling temperature; default 0.7 as released")
    clone.add_argument("--max-seconds", type=float, default=None, help="upper bound on generated audio per piece; default from the text length")
    clone.set_defaults(run=cmd_clone)

    edit = sub.add_parser("edit", help="edit the emotion, style, speed, sounds, noise or silence of a recording")
    common(edit)
    edit.add_argument("--prompt-text", default="", help="transcript of the recording (not needed for denoise and vad)")
    edit.add_argument("--edit-type", required=True, choices=list(edits), help="what to edit")
    options = "; ".join(f"{k}: {', '.join(v.options)}" for k, v in edits.items() if v.options)
    edit.add_argument("--edit-info", default=None, help=f"the option of the edit type ({options})")
    edit.add_argument("--text", default=None, help="paralinguistic only: the new text with tags such as [Laughter] inline")
    edit.add_argument("--n-iter", type=int, default=1, help="edit passes; each re-encodes the previous output, as the reference does; one file per pass when > 1")
    edit.add_argument(
        "--max-piece-seconds", type=float, default=DEFAULT_PIECE_SECONDS,
        help=f"a recording longer than this is edited in pieces cut at pauses, at most this long each "
        f"({MIN_PIECE_SECONDS:.0f}-{WINDOW_SECONDS:.0f} s; default {DEFAULT_PIECE_SECONDS:.0f} s, room for a slower speed edit)",
    )
    edit.set_defaults(run=cmd_edit)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except StepAudioError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except Exception as e:  # the one place that turns a bug into one line; --debug shows it
        if args.debug:
            raise
        print(f"error: unexpected {type(e).__name__}: {e} (run again with --debug for the traceback)", file=sys.stderr)
        return 1
