"""The named limits of every input: one table for the facade's checks, the nodes' widgets and the CLI.

Plain numbers with no imports, so the nodes can build their widgets at ComfyUI start-up without
loading torch. ``validate`` checks inputs against these; nothing else repeats them.
"""

# ---- recordings
WINDOW_SECONDS = 30.0  # the release: "keep audio under 30 seconds per inference"
# Long edits take whole podcast segments and audiobook chapters; a longer file is more likely a mistake
# (a whole album), and its samples alone would take gigabytes.
MAX_RECORDING_SECONDS = 1800.0
# A recording longer than max_piece_seconds is edited in pieces cut at pauses (longedit). Edits may
# run 2.5x their input + 5 s within the window; 15 s leaves room for a slower speed edit.
DEFAULT_PIECE_SECONDS, MIN_PIECE_SECONDS = 15.0, 3.0
MIN_SECONDS = 880 / 16000  # one vq02 frame: shorter 16 kHz clips give no vq02 code at all
MIN_RATE, MAX_RATE = 8000, 384000
SILENCE_PEAK = 1e-3  # -60 dBFS: quieter than any usable recording
# Resampling by a ratio p/q (in lowest terms) builds a (q, p + taps) sinc kernel: 44101 Hz -> 16 kHz
# would need 700M weights, many GB. Refuse such rates instead of exhausting the machine's memory;
# every standard rate needs under 0.3M, and 16M already costs about 0.9 GB while it runs.
MAX_RESAMPLE_KERNEL = 16_000_000
MODEL_RATES = (16000, 24000)  # the tokenizer and CAM++ read 16 kHz, the prompt mel 24 kHz
# spoken_units per second of audio: ~12-15 in ordinary speech, in any of the supported languages
TRANSCRIPT_MAX_RATE, TRANSCRIPT_SLACK = 40.0, 20.0
TRANSCRIPT_MIN_RATE, TRANSCRIPT_MIN_SLACK = 1.5, 5.0

SPOKEN_UNITS_PER_SECOND = 13.0  # ordinary speech (see above): the estimate of a text's length shown before a clone

# ---- where and how the model runs (the Loader's and the CLI's choices)
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "bf16", "fp16", "fp32")
QUANTIZATIONS = ("none", "int8", "nf4")  # bitsandbytes, at load time; AWQ folders carry their own

# ---- generation
DEFAULT_TEMPERATURE = 0.7  # the released setting
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.05, 2.0  # below: greedy in all but name; above: the LM babbles
DEFAULT_FLOW_STEPS = 10  # the released decoder's Euler steps
MIN_FLOW_STEPS, MAX_FLOW_STEPS = 1, 100
MAX_EDIT_PASSES = 10  # passes of Edit (iterate): each one re-encodes and edits again
MAX_GENERATION_SECONDS = 120.0  # per generation: four times the model's 30 s window is already far past it
# ComfyUI's seed widgets are non-negative, so the CLI and the library take the same range;
# a pass or piece i adds i, which torch.Generator still takes (it reads seeds up to 2^64 - 1)
SEED_MIN, SEED_MAX = 0, 2**63 - 1
LONG_TEXT_WARN_SECONDS = 600.0  # the CLI warns before cloning text estimated longer than this

# ---- dialogue
DEFAULT_PAUSE_SECONDS = 0.5  # between two lines where the script sets no [pause]: a natural turn-taking gap
MAX_PAUSE_SECONDS = 60.0  # one pause; longer silence belongs in an audio editor
MAX_SCRIPT_LINES = 1000  # spoken lines per script: hours of speech, far past one scene

# ---- speech recognition
ASR_LANGUAGES = ("auto", "zh", "en", "yue", "ja", "ko")  # the languages the model clones; auto: Whisper detects
