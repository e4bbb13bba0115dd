"""The text format shared by every learner and the scorer: how a question, its answer and demonstrations are written.

The answer format (ntkeval.formats) decides what the answer text is (a bare answer, numbered steps, a program); this
decides how it is placed: the question template, the answer template and delimiter around the written answer, the
separator between demonstrations, and the format's instruction line at the very start of every prompt.
"""

from dataclasses import dataclass, field, replace

from ntkeval.data.base import Example


@dataclass(frozen=True)
class PromptFormat:
    question: str = "Q: {question}\nA:"  # the prompt; the model continues it with the answer
    answer: str = " {answer}"            # how the answer follows the prompt (leading space included)
    delimiter: str = "\n"                # ends an answer: scored with it, so "96" does not also count "960"
    separator: str = "\n"                # between two demonstrations, after the delimiter
    # the answer format's instruction line: set by the cell from conf/format (with_instruction), never by conf/prompt
    instruction: str = field(default="", init=False)

    def with_instruction(self, line: str) -> "PromptFormat":
        """The same format with the answer format's instruction line before every prompt."""
        instructed = replace(self)
        object.__setattr__(instructed, "instruction", line)  # frozen, and not a constructor argument (see above)
        return instructed

    def prompt(self, example: Example, prefix: str = "") -> str:
        """The text the model is conditioned on: the instruction line, an optional prefix (demonstrations) and the
        question. The instruction leads so demonstrations and the question read as one task under it."""
        lead = self.instruction + "\n" if self.instruction else ""
        return lead + prefix + self.question.format(question=example.question)

    def target(self, answer: str) -> str:
        """The continuation whose probability is scored: the written answer and its end-of-answer delimiter."""
        return self.answer.format(answer=answer) + self.delimiter

    def demonstration(self, example: Example, answer: str | None = None) -> str:
        """One solved example as it appears in an in-context prefix (no instruction line: the prompt has it once)."""
        return self.question.format(question=example.question) + self.target(example.answer if answer is None
                                                                               else answer)

    def demonstrations(self, examples: list[Example], answers: list[str] | None = None) -> str:
        """An in-context prefix: solved examples (with `answers` written in the answer format, else their bare
        answers), each followed by the separator."""
        written = answers if answers is not None else [None] * len(examples)
        return "".join(self.demonstration(e, a) + self.separator for e, a in zip(examples, written, strict=True))

    def identity(self) -> dict:
        parts = {"question": self.question, "answer": self.answer,
                 "delimiter": self.delimiter, "separator": self.separator}
        # only when set, so every key made before instruction lines existed keeps its value
        return {**parts, "instruction": self.instruction} if self.instruction else parts
