"""The main job without ComfyUI, mirroring the reference's ``tts_infer.py``.

    python -m stepaudio_core clone --models DIR --prompt-audio WAV --prompt-text TEXT --text TEXT --out WAV
    python -m stepaudio_core edit  --models DIR --prompt-audio WAV --prompt-text TEXT --edit-type TYPE
                                   [--edit-info OPTION] [--text NEW_TEXT] [--n-iter N] [--seed S] --out WAV

DIR holds ``Step-Audio-EditX/`` and ``Step-Audio-Tokenizer/``. Every flag, the output path and the
recording are checked before a model loads (``cli_inputs``, ``cli_output``); errors print one line
in the CLI's words (flags, not node inputs) and exit 2; every file is written whole, each edit
pass as soon as it is done.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__, cli_inputs, cli_output, limits
from .console import Progress, warnings_to_stderr
from .errors import StepAudioError
from .vocabulary import CLI, render


def _model(args):
    from .pipeline import StepAudioEditX

    return StepAudioEditX(args.models, device=args.device, dtype=args.dtype, quantization=args.quantization)


def _recording(args):
    from .validate import prepare_audio

    return prepare_audio(*cli_inputs.read_recording(args.prompt_audio), "audio")


def _wrote(progress: Progress, path: Path, audio, sample_rate: int) -> None:
    cli_output.write_audio(path, audio, sample_rate)
    progress.line(f"wrote {path} ({audio.shape[-1] / sample_rate:.2f} s)", stream=sys.stdout)


def cmd_clone(args) -> int:
    pieces = cli_inputs.check_clone(args)
    out = cli_output.check_output(args.out, (args.prompt_audio,))
    wav, sr = _recording(args)
    progress = Progress("clone")
    plan = cli_inputs.clone_plan(args.text, pieces, args.max_seconds)
    if plan:
        progress.line(plan)
    with cli_output.OutputLock(out):
        model = _model(args)
        prompt = model.encode(wav, sr, args.prompt_text)
        audio = model.clone_long(
            prompt, args.text, language=args.language, seed=args.seed, temperature=args.temperature,
            max_seconds=args.max_seconds, on_token=progress, on_piece=progress.piece,
        )
        progress.close()
        _wrote(progress, out, audio, model.sample_rate)
    return 0


def cmd_edit(args) -> int:
    cli_inputs.check_edit(args)
    out = cli_output.check_output(args.out, (args.prompt_audio,))
    paths = cli_output.iteration_paths(out, args.n_iter)
    wav, sr = _recording(args)
    progress = Progress("edit")
    with cli_output.OutputLock(out):
        model = _model(args)

        def keep(i: int, audio) -> None:  # each pass on disk as soon as it exists: Ctrl-C later keeps it
            progress.close()
            _wrote(progress, paths[i], audio, model.sample_rate)

        model.edit_iterations(
            wav, sr, args.prompt_text or "", args.edit_type, args.edit_info, new_text=args.text, n_iter=args.n_iter,
            seed=args.seed, on_token=progress, on_pass=lambda i: progress.pass_(i, args.n_iter), on_result=keep,
        )
    return 0


EXAMPLES = {
    "clone": "python -m stepaudio_core clone --models models/ --prompt-audio ref.wav "
    "--prompt-text \"What the reference says.\" --text \"New words in that voice.\" --out cloned.wav",
    "edit": "python -m stepaudio_core edit --models models/ --prompt-audio in.wav --prompt-text \"What it says.\" "
    "--edit-type emotion --edit-info happy --n-iter 2 --out happy.wav   (writes happy_iter1.wav, happy_iter2.wav)",
}


def build_parser() -> argparse.ArgumentParser:
    from .edits import EDIT_TYPES, LANGUAGE_TAGS, PARALINGUISTIC_TAGS

    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="python -m stepaudio_core", formatter_class=fmt,
        description="Step-Audio-EditX: clone a voice or edit a recording.",
        epilog="examples:\n" + "\n".join(f"  {e}" for e in EXAMPLES.values()),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--models", required=True, type=Path, help="folder holding Step-Audio-EditX/ and Step-Audio-Tokenizer/")
        p.add_argument("--prompt-audio", required=True, type=Path, help="the reference (clone) or input (edit) recording; any rate, any channels")
        p.add_argument("--out", required=True, type=Path,
                       help=f"output audio file, 24 kHz mono; the format follows the extension: {cli_output.FORMAT_HELP}. "
                       "Checked before any model loads; written whole (temporary file, then renamed)")
        p.add_argument("--seed", type=int, default=0,
                       help=f"seed of every random draw (sampling and decoder noise), {limits.SEED_MIN} to 2^63-1; default 0")
        p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="default: CUDA, then MPS, then CPU")
        p.add_argument("--dtype", default="auto", choices=["auto", "bf16", "fp16", "fp32"], help="LM precision; auto = bf16 where supported")
        p.add_argument("--quantization", default="none", choices=["none", "int8", "nf4"], help="bitsandbytes quantisation of the LM's linear layers (CUDA)")
        p.add_argument("--debug", action="store_true", help="show the full traceback of unexpected errors")

    clone = sub.add_parser("clone", help="speak new text in the voice of a reference recording", formatter_class=fmt,
                           epilog=f"example:\n  {EXAMPLES['clone']}")
    common(clone)
    clone.add_argument("--prompt-text", required=True, help="transcript of the reference recording")
    clone.add_argument("--text", required=True,
                       help="what to say; long text is split at sentence ends, and its length in pieces and minutes is "
                       "shown before it starts")
    clone.add_argument("--language", default=None, choices=list(LANGUAGE_TAGS),
                       help=f"language tag prepended to the text: {', '.join(LANGUAGE_TAGS)} (none for Mandarin and English)")
    clone.add_argument("--temperature", type=float, default=limits.DEFAULT_TEMPERATURE,
                       help=f"sampling temperature, {limits.MIN_TEMPERATURE} to {limits.MAX_TEMPERATURE}; "
                       f"default {limits.DEFAULT_TEMPERATURE} as released")
    clone.add_argument("--max-seconds", type=float, default=None,
                       help=f"upper bound on generated audio per piece, at most {limits.MAX_GENERATION_SECONDS:.0f}; "
                       "default from the text length")
    clone.set_defaults(run=cmd_clone)

    edit = sub.add_parser("edit", help="edit the emotion, style, speed, sounds, noise or silence of a recording",
                          formatter_class=fmt, epilog=f"example:\n  {EXAMPLES['edit']}")
    common(edit)
    edit.add_argument("--prompt-text", default="", help="transcript of the recording (not needed for denoise and vad)")
    edit.add_argument("--edit-type", required=True, choices=list(EDIT_TYPES), help="what to edit")
    options = "; ".join(f"{k}: {', '.join(v.options)}" for k, v in EDIT_TYPES.items() if v.options)
    edit.add_argument("--edit-info", default=None, help=f"the option of the edit type ({options})")
    edit.add_argument("--text", default=None,
                      help=f"paralinguistic only: the new text with tags inline, e.g. \"I did it [Laughter]\"; tags: "
                      f"{' '.join(PARALINGUISTIC_TAGS)}")
    edit.add_argument("--n-iter", type=int, default=1,
                      help=f"edit passes, 1 to {limits.MAX_EDIT_PASSES}; each re-encodes the previous output, as the "
                      "reference does. One pass writes --out itself; N > 1 passes write one file per pass, named "
                      "with _iter<i> before the extension (out.wav -> out_iter1.wav ... out_iterN.wav), each as soon "
                      "as that pass is done")
    edit.set_defaults(run=cmd_edit)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with warnings_to_stderr(CLI):
        try:
            return args.run(args)
        except StepAudioError as e:
            print(f"error: {render(e, CLI)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("\ninterrupted", file=sys.stderr)
            return 130
        except Exception as e:  # the one place that turns a bug into one line; --debug shows it
            if args.debug:
                raise
            print(f"error: unexpected {type(e).__name__}: {e} (run again with --debug for the traceback)", file=sys.stderr)
            return 1
