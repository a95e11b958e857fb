"""Speech recognition: Whisper checkpoints in transformers format turn a recording into a Transcript.

transformers is imported only inside ``SpeechRecognizer``, so importing this package costs nothing
and works without transformers installed.
"""

from .folder import ASR_DIR, DEFAULT_ASR_MODEL, KNOWN_ASR_MODELS, check_asr_folder
from .recognizer import LANGUAGES, SpeechRecognizer

__all__ = ["ASR_DIR", "DEFAULT_ASR_MODEL", "KNOWN_ASR_MODELS", "LANGUAGES", "SpeechRecognizer", "check_asr_folder"]
