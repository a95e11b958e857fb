"""The main job without ComfyUI, mirroring the reference's ``tts_infer.py``.

    python -m stepaudio_core clone --models DIR --prompt-audio WAV --prompt-text TEXT --text TEXT --out WAV
    python -m stepaudio_core edit  --models DIR --prompt-audio WAV --prompt-text TEXT --edit-type TYPE
                                   [--edit-info OPTION] [--text NEW_TEXT] [--n-iter N] [--seed S] --out WAV
    python -m stepaudio_core dialogue --models DIR --voice NAME=WAV:TRANSCRIPT [--voice ...] --script TXT
                                   --out WAV [--srt SRT] [--lines-dir DIR]

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
        seed=args.seed, on_token=_progress("edit"),
    )
    print(file=sys.stderr)
    for path, audio in zip(_iteration_paths(args.out, len(results)), results):
        _write_audio(path, audio, model.sample_rate)
        print(f"wrote {path} ({audio.shape[-1] / model.sample_rate:.2f} s)")
    return 0


def _voice_arg(value: str) -> tuple[str, Path, str]:
    """``NAME=PATH:TRANSCRIPT``; the path is the shortest one before a ':' that names a file (so C:\\ paths work)."""
    name, sep, rest = value.partition("=")
    if not sep or not name.strip():
        raise InputError(f"--voice {value!r}: write NAME=FILE:TRANSCRIPT, e.g. --voice Alice=alice.wav:\"Hello there.\"")
    for i, ch in enumerate(rest):
        if ch == ":" and Path(rest[:i]).is_file():
            return name.strip(), Path(rest[:i]), rest[i + 1 :].strip()
    what = "has no transcript: add :TRANSCRIPT after the file" if Path(rest).is_file() else "names no file that exists"
    raise InputError(f"--voice {name.strip()}={rest} {what} (NAME=FILE:TRANSCRIPT)")


def cmd_dialogue(args) -> int:
    from .dialogue import render_dialogue

    voices = [_voice_arg(v) for v in args.voice]
    try:
        script = args.script.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"--script: cannot read {args.script} as UTF-8 text ({e})") from None
    model = _model(args)
    prompts = {}
    for name, path, transcript in voices:
        if name.lower() in {n.lower() for n in prompts}:
            raise InputError(f"--voice {name} is given twice; give each speaker one voice")
        prompts[name] = model.encode(*_read_audio(path), transcript)
    tokens = _progress("dialogue")
    scene = render_dialogue(
        model, prompts, script, seed=args.seed, pause=args.pause, temperature=args.temperature,
        flow_steps=args.flow_steps, max_seconds=args.max_seconds, on_token=tokens,
        how_to_add=lambda n: f"add --voice {n}=FILE:TRANSCRIPT",
        on_pass=lambda i, n: print(f"\rgeneration {i + 1} of {n}", end="", file=sys.stderr, flush=True),
    )
    print(file=sys.stderr)
    _write_audio(args.out, scene.audio, scene.sample_rate)
    print(f"wrote {args.out} ({scene.audio.shape[-1] / scene.sample_rate:.2f} s, {len(scene.lines)} lines, "
          f"{sum(r.reused for r in scene.lines)} reused)")
    if args.srt:
        args.srt.parent.mkdir(parents=True, exist_ok=True)
        args.srt.write_text(scene.srt(), encoding="utf-8")
        print(f"wrote {args.srt}")
    if args.lines_dir:
        for i, r in enumerate(scene.lines, start=1):
            _write_audio(args.lines_dir / f"{i:03d}_{r.line.speaker}.wav", r.audio, scene.sample_rate)
        print(f"wrote {len(scene.lines)} line files to {args.lines_dir}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .edits import EDIT_TYPES, LANGUAGE_TAGS, PARALINGUISTIC_TAGS

    edits = EDIT_TYPES
    parser = argparse.ArgumentParser(prog="python -m stepaudio_core", description="Step-Audio-EditX: clone a voice or edit a recording.")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--models", required=True, type=Path, help="folder holding Step-Audio-EditX/ and Step-Audio-Tokenizer/ (or its Step-Audio-EditX-AWQ-4bit/ subfolder, for the 4-bit LM)")
        p.add_argument("--prompt-audio", required=True, type=Path, help="the reference (clone) or input (edit) recording; any rate, any channels")
        p.add_argument("--out", required=True, type=Path, help="output WAV (24 kHz mono)")
        p.add_argument("--seed", type=int, default=0, help="seed of every random draw (sampling and decoder noise); default 0")
        p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="default: CUDA, then MPS, then CPU")
        p.add_argument("--dtype", default="auto", choices=["auto", "bf16", "fp16", "fp32"], help="LM precision; auto = bf16 where supported")
        p.add_argument("--quantization", default="none", choices=["none", "int8", "nf4"], help="bitsandbytes quantisation of the LM's linear layers (CUDA); none for a Step-Audio-EditX-AWQ-4bit folder, which carries its own")
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
    edit.set_defaults(run=cmd_edit)

    from .dialogue import instruction_names
    from .limits import DEFAULT_PAUSE_SECONDS

    dia = sub.add_parser("dialogue", help="speak a script of several voices: [Name|instruction] text, one line each")
    dia.add_argument("--models", required=True, type=Path, help="folder holding Step-Audio-EditX/ and Step-Audio-Tokenizer/")
    dia.add_argument("--voice", action="append", required=True, metavar="NAME=FILE:TRANSCRIPT",
                     help="a speaker's name, reference recording and its transcript; once per speaker")
    dia.add_argument("--script", required=True, type=Path, help="UTF-8 text file, one line per utterance: [Name] text, "
                     "[Name|happy] text, [pause 1.5], # comments (see web/docs/StepAudioDialogue.md). Instructions: "
                     f"{', '.join(instruction_names())}. Sound tags, inline: {' '.join(PARALINGUISTIC_TAGS)}")
    dia.add_argument("--out", required=True, type=Path, help="the whole dialogue as a WAV (24 kHz mono)")
    dia.add_argument("--srt", type=Path, default=None, help="also write SRT subtitles (speaker: text, per line)")
    dia.add_argument("--lines-dir", type=Path, default=None, help="also write every line as its own WAV into this folder")
    dia.add_argument("--pause", type=float, default=DEFAULT_PAUSE_SECONDS,
                     help=f"seconds between lines where the script sets no [pause]; default {DEFAULT_PAUSE_SECONDS}")
    dia.add_argument("--seed", type=int, default=0, help="the script's seed; each line derives its own from it; default 0")
    dia.add_argument("--temperature", type=float, default=0.7, help="sampling temperature; default 0.7 as released")
    dia.add_argument("--flow-steps", type=int, default=10, help="decoder Euler steps; default 10 as released")
    dia.add_argument("--max-seconds", type=float, default=None, help="upper bound on generated audio per line piece")
    dia.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="default: CUDA, then MPS, then CPU")
    dia.add_argument("--dtype", default="auto", choices=["auto", "bf16", "fp16", "fp32"], help="LM precision; auto = bf16 where supported")
    dia.add_argument("--quantization", default="none", choices=["none", "int8", "nf4"], help="bitsandbytes quantisation of the LM (CUDA)")
    dia.add_argument("--debug", action="store_true", help="show the full traceback of unexpected errors")
    dia.set_defaults(run=cmd_dialogue)
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
