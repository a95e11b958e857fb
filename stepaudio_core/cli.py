"""The main job without ComfyUI, mirroring the reference's ``tts_infer.py``.

    python -m stepaudio_core clone --models DIR --prompt-audio WAV --prompt-text TEXT --text TEXT --out WAV
    python -m stepaudio_core edit  --models DIR --prompt-audio WAV --prompt-text TEXT --edit-type TYPE
                                   [--edit-info OPTION] [--text NEW_TEXT] [--n-iter N] [--seed S] --out WAV
    python -m stepaudio_core dialogue --models DIR --voice NAME=WAV:TRANSCRIPT [--voice ...] --script TXT
                                   --out WAV [--srt SRT] [--lines-dir DIR]

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
from .errors import InputError, StepAudioError
from .vocabulary import CLI, render


def _model(args):
    from .pipeline import StepAudioEditX

    return StepAudioEditX(args.models, device=args.device, dtype=args.dtype, quantization=args.quantization)


def _asr_folder(args, needed: bool) -> Path | None:
    """The Whisper folder that fills a missing --prompt-text (--transcribe, --asr-model, or one found in DIR/asr/)."""
    from .asr.cli import asr_folder

    if args.prompt_text:
        return None
    folder = asr_folder(args.models, args.asr_model)
    if args.transcribe or args.asr_model or (needed and (folder / "config.json").is_file()):
        from .asr.folder import check_asr_folder

        return check_asr_folder(folder)  # checked before any model loads, like every other input
    return None


def _prompt_text(args, folder: Path | None, wav, sr) -> str:
    """--prompt-text, else the ASR's transcript of the recording (printed, so the user sees what was used)."""
    if folder is None:
        return args.prompt_text or ""
    from .asr.cli import transcribe_for_cli

    return transcribe_for_cli(folder, wav, sr, args.device)


def _recording(path: Path, flag: str = "--prompt-audio"):
    from .validate import prepare_audio

    # the canonical name "audio" reads "--prompt-audio" in the CLI's words; other flags name themselves
    return prepare_audio(*cli_inputs.read_recording(path, flag), "audio" if flag == "--prompt-audio" else flag)


def _wrote(progress: Progress, path: Path, audio, sample_rate: int) -> None:
    cli_output.write_audio(path, audio, sample_rate)
    progress.line(f"wrote {path} ({audio.shape[-1] / sample_rate:.2f} s)", stream=sys.stdout)


def cmd_clone(args) -> int:
    asr = _asr_folder(args, needed=True)
    pieces = cli_inputs.check_clone(args, transcribing=asr is not None)
    out = cli_output.check_output(args.out, (args.prompt_audio,))
    with cli_output.OutputLock(out):  # before anything slow: a second run on this --out stops at once
        wav, sr = _recording(args.prompt_audio)
        progress = Progress("clone")
        plan = cli_inputs.clone_plan(args.text, pieces, args.max_seconds)
        if plan:
            progress.line(plan)
        model = _model(args)
        prompt = model.encode(wav, sr, _prompt_text(args, asr, wav, sr))
        tokens = model.clone(
            prompt, args.text, language=args.language, seed=args.seed, temperature=args.temperature,
            max_seconds=args.max_seconds, on_token=progress, on_piece=progress.piece,
        )
        audio = model.decode(tokens, seed=args.seed)  # long text: its pieces, crossfaded
        progress.close()
        _wrote(progress, out, audio, model.sample_rate)
    return 0


def cmd_edit(args) -> int:
    asr = _asr_folder(args, needed=args.edit_type not in ("denoise", "vad"))
    cli_inputs.check_edit(args, transcribing=asr is not None)
    out = cli_output.check_output(args.out, (args.prompt_audio,))
    paths = cli_output.iteration_paths(out, args.n_iter)
    with cli_output.OutputLock(out):  # before anything slow: a second run on this --out stops at once
        wav, sr = _recording(args.prompt_audio)
        progress = Progress("edit")
        model = _model(args)

        def keep(i: int, audio) -> None:  # each pass on disk as soon as it exists: Ctrl-C later keeps it
            progress.close()
            _wrote(progress, paths[i], audio, model.sample_rate)

        passes = [0]

        def on_pass(i: int) -> None:
            passes[0] = i
            progress.pass_(i, args.n_iter)

        def on_piece(i: int, n: int) -> None:  # a recording longer than --max-piece-seconds is edited in pieces
            progress.stage(f"pass {passes[0] + 1}/{args.n_iter} piece" if args.n_iter > 1 else "piece", i, n)

        prompt = model.encode(wav, sr, _prompt_text(args, asr, wav, sr))
        model.iterate_edit(
            prompt, args.edit_type, args.edit_info, new_text=args.text, n_iter=args.n_iter, seed=args.seed,
            on_token=progress, on_pass=on_pass, on_result=keep, max_piece_seconds=args.max_piece_seconds,
            on_piece=on_piece,
        )
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
    voices = [_voice_arg(v) for v in args.voice]
    if len({n.lower() for n, _, _ in voices}) < len(voices):
        raise InputError("--voice: a speaker is given twice; give each speaker one voice")
    cli_inputs.check_dialogue(args)
    try:
        script = args.script.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"--script: cannot read {args.script} as UTF-8 text ({e})") from None
    out = cli_output.check_output(args.out, tuple(p for _, p, _ in voices))
    srt = cli_output.check_folder(args.srt, "--srt") if args.srt else None
    lines_dir = cli_output.check_folder(args.lines_dir / "x.wav", "--lines-dir").parent if args.lines_dir else None
    with cli_output.OutputLock(out):  # before anything slow: a second run on this --out stops at once
        recordings = {name: (_recording(path, f"--voice {name}"), transcript) for name, path, transcript in voices}
        progress = Progress("dialogue")
        from .dialogue import render_dialogue

        model = _model(args)
        prompts = {name: model.encode(*rec, transcript) for name, (rec, transcript) in recordings.items()}
        scene = render_dialogue(
            model, prompts, script, seed=args.seed, pause=args.pause, temperature=args.temperature,
            flow_steps=args.flow_steps, max_seconds=args.max_seconds, on_token=progress,
            how_to_add=lambda n: f"add --voice {n}=FILE:TRANSCRIPT",
            on_pass=lambda i, n: progress.stage("generation", i, n),
        )
        progress.close()
        cli_output.write_audio(out, scene.audio, scene.sample_rate)
        progress.line(f"wrote {out} ({scene.audio.shape[-1] / scene.sample_rate:.2f} s, {len(scene.lines)} lines, "
                      f"{sum(r.reused for r in scene.lines)} reused)", stream=sys.stdout)
        if srt:
            cli_output.write_text(srt, scene.srt())
            progress.line(f"wrote {srt}", stream=sys.stdout)
        if lines_dir:
            for i, r in enumerate(scene.lines, start=1):
                cli_output.write_audio(lines_dir / f"{i:03d}_{r.line.speaker}.wav", r.audio, scene.sample_rate)
            progress.line(f"wrote {len(scene.lines)} line files to {lines_dir}", stream=sys.stdout)
    return 0


class _Instructions:
    """The dialogue's instruction names, listed only when help is shown: the dialogue package imports torch,
    and every other use of the parser must fail fast on a bad flag without it."""

    def __str__(self) -> str:
        from .dialogue import instruction_names

        return ", ".join(instruction_names())


EXAMPLES = {
    "clone": "python -m stepaudio_core clone --models models/ --prompt-audio ref.wav "
    "--prompt-text \"What the reference says.\" --text \"New words in that voice.\" --out cloned.wav",
    "edit": "python -m stepaudio_core edit --models models/ --prompt-audio in.wav --prompt-text \"What it says.\" "
    "--edit-type emotion --edit-info happy --n-iter 2 --out happy.wav   (writes happy_iter1.wav, happy_iter2.wav)",
    "dialogue": "python -m stepaudio_core dialogue --models models/ --voice \"Ann=ann.wav:What Ann says.\" "
    "--voice \"Bob=bob.wav:What Bob says.\" --script scene.txt --out scene.wav --srt scene.srt",
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

    def runtime(p: argparse.ArgumentParser) -> None:
        """Where and how the model runs, and how errors show: the same for every subcommand."""
        p.add_argument("--device", default="auto", choices=limits.DEVICES, help="default: CUDA, then MPS, then CPU")
        p.add_argument("--dtype", default="auto", choices=limits.DTYPES, help="LM precision; auto = bf16 where supported")
        p.add_argument("--quantization", default="none", choices=limits.QUANTIZATIONS, help="bitsandbytes quantisation of the LM's linear layers (CUDA); none for a Step-Audio-EditX-AWQ-4bit folder, which carries its own")
        p.add_argument("--debug", action="store_true", help="show the full traceback of unexpected errors")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--models", required=True, type=Path, help="folder holding Step-Audio-EditX/ and Step-Audio-Tokenizer/ (or its Step-Audio-EditX-AWQ-4bit/ subfolder, for the 4-bit LM)")
        p.add_argument("--prompt-audio", required=True, type=Path, help="the reference (clone) or input (edit) recording; any rate, any channels")
        p.add_argument("--out", required=True, type=Path,
                       help=f"output audio file, 24 kHz mono; the format follows the extension: {cli_output.FORMAT_HELP}. "
                       "Checked before any model loads; written whole (temporary file, then renamed)")
        p.add_argument("--seed", type=int, default=0,
                       help=f"seed of every random draw (sampling and decoder noise), {limits.SEED_MIN} to 2^63-1; default 0")
        runtime(p)
        p.add_argument("--transcribe", action="store_true", help="without --prompt-text: transcribe --prompt-audio with Whisper (printed)")
        p.add_argument("--asr-model", default=None, help="Whisper folder or name under DIR/asr/; default whisper-large-v3-turbo (used automatically when --prompt-text is missing)")

    clone = sub.add_parser("clone", help="speak new text in the voice of a reference recording", formatter_class=fmt,
                           epilog=f"example:\n  {EXAMPLES['clone']}")
    common(clone)
    clone.add_argument("--prompt-text", default=None,
                       help="transcript of the reference recording (or --transcribe: Whisper writes it, and it is printed)")
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
    edit.add_argument(
        "--max-piece-seconds", type=float, default=limits.DEFAULT_PIECE_SECONDS,
        help=f"a recording longer than this is edited in pieces cut at pauses, at most this long each "
        f"({limits.MIN_PIECE_SECONDS:.0f}-{limits.WINDOW_SECONDS:.0f} s; default {limits.DEFAULT_PIECE_SECONDS:.0f} s, "
        "room for a slower speed edit); the whole recording comes back edited",
    )
    edit.set_defaults(run=cmd_edit)

    from .limits import DEFAULT_PAUSE_SECONDS

    dia = sub.add_parser("dialogue", help="speak a script of several voices: [Name|instruction] text, one line each",
                         formatter_class=fmt, epilog=f"example:\n  {EXAMPLES['dialogue']}")
    dia.add_argument("--models", required=True, type=Path, help="folder holding Step-Audio-EditX/ and Step-Audio-Tokenizer/")
    dia.add_argument("--voice", action="append", required=True, metavar="NAME=FILE:TRANSCRIPT",
                     help="a speaker's name, reference recording and its transcript; once per speaker")
    script = dia.add_argument("--script", required=True, type=Path, help="UTF-8 text file, one line per utterance: [Name] text, "
                     "[Name|happy] text, [pause 1.5], # comments (see web/docs/StepAudioDialogue.md). Instructions: "
                     f"%(instructions)s. Sound tags, inline: {' '.join(PARALINGUISTIC_TAGS)}")
    script.instructions = _Instructions()  # argparse fills %(name)s from the action's attributes, at --help time
    dia.add_argument("--out", required=True, type=Path,
                     help=f"the whole dialogue, 24 kHz mono; the format follows the extension: {cli_output.FORMAT_HELP}")
    dia.add_argument("--srt", type=Path, default=None, help="also write SRT subtitles (speaker: text, per line)")
    dia.add_argument("--lines-dir", type=Path, default=None,
                     help="also write every line as its own WAV into this folder (NNN_Speaker.wav)")
    dia.add_argument("--pause", type=float, default=DEFAULT_PAUSE_SECONDS,
                     help=f"seconds between lines where the script sets no [pause], 0 to {limits.MAX_PAUSE_SECONDS:.0f}; "
                     f"default {DEFAULT_PAUSE_SECONDS}")
    dia.add_argument("--seed", type=int, default=0,
                     help=f"the script's seed, {limits.SEED_MIN} to 2^63-1; each line derives its own from it; default 0")
    dia.add_argument("--temperature", type=float, default=limits.DEFAULT_TEMPERATURE,
                     help=f"sampling temperature, {limits.MIN_TEMPERATURE} to {limits.MAX_TEMPERATURE}; "
                     f"default {limits.DEFAULT_TEMPERATURE} as released")
    dia.add_argument("--flow-steps", type=int, default=limits.DEFAULT_FLOW_STEPS,
                     help=f"decoder Euler steps, {limits.MIN_FLOW_STEPS} to {limits.MAX_FLOW_STEPS}; "
                     f"default {limits.DEFAULT_FLOW_STEPS} as released")
    dia.add_argument("--max-seconds", type=float, default=None,
                     help=f"upper bound on generated audio per line piece, at most {limits.MAX_GENERATION_SECONDS:.0f}")
    runtime(dia)
    dia.set_defaults(run=cmd_dialogue)
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
