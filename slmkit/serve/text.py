"""Token ids to text deltas: cut at stop strings, hold back text that may start one, never split a character."""

from __future__ import annotations


class TextAssembler:
    """Turns token ids into text deltas, cutting at stop strings and holding back text that may start one."""

    def __init__(self, engine, stop: list[str]):
        self.engine, self.stop = engine, stop
        self.ids: list[int] = []
        self.sent = ""
        self.finish: str | None = None
        self.cut = False
        self.hold = max((len(s) for s in stop), default=1) - 1

    def add(self, token: int) -> str:
        """The new text after one more token ("" while waiting); sets `finish` when a stop is reached."""
        if token in self.engine.stop_token_ids:
            self.finish = "stop"
            return self.flush()
        self.ids.append(token)
        text = self.engine.decode(self.ids)
        cuts = [text.find(s) for s in self.stop if s in text]
        if cuts:
            self.finish, self.cut = "stop", True
            return self._emit(text[: min(cuts)])
        if text.endswith("\ufffd"):  # half of a multi-byte character: wait for the rest
            return ""
        return self._emit(text[: len(text) - self.hold])

    def flush(self) -> str:
        """Whatever was held back, once generation has ended."""
        return "" if self.cut else self._emit(self.engine.decode(self.ids))

    def _emit(self, text: str) -> str:
        if len(text) <= len(self.sent) or not text.startswith(self.sent):
            return ""
        delta, self.sent = text[len(self.sent):], text
        return delta
