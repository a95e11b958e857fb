"""The pack's own socket types. Pack-prefixed so they never collide with another pack's."""

from comfy_api.latest import io

StepAudioModel = io.Custom("STEP_AUDIO_MODEL")
StepAudioPrompt = io.Custom("STEP_AUDIO_PROMPT")
StepAudioTokens = io.Custom("STEP_AUDIO_TOKENS")

CATEGORY = "audio/Step-Audio-EditX"
StepAudioASR = io.Custom("STEP_AUDIO_ASR")
# A tuple of stepaudio_core.transcript.Transcript, one per clip of the transcribed batch.
StepAudioTranscript = io.Custom("STEP_AUDIO_TRANSCRIPT")
