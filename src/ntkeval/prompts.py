"""The text format shared by every learner and the scorer: how a question, its answer and demonstrations are written."""

from dataclasses import dataclass

from ntkeval.data.base import Example


@dataclass(frozen=True)
class PromptFormat:
    question: str = "Q: {question}\nA:"  # the prompt; the model continues it with the answer
    answer: str = " {answer}"            # how the answer follows the prompt (leading space included)
    delimiter: str = "\n"                # ends an answer: scored with it, so "96" does not also count "960"
    separator: str = "\n"                # between two demonstrations, after the delimiter

    def prompt(self, example: Example, prefix: str = "") -> str:
        """The text the model is conditioned on: an optional prefix (demonstrations) and the question."""
        return prefix + self.question.format(question=example.question)

    def target(self, answer: str) -> str:
        """The continuation whose probability is scored: the answer and its end-of-answer delimiter."""
        return self.answer.format(answer=answer) + self.delimiter

    def demonstration(self, example: Example, answer: str | None = None) -> str:
        """One solved example as it appears in an in-context prefix or a tuning sequence."""
        return self.prompt(example) + self.target(example.answer if answer is None else answer)

    def demonstrations(self, examples: list[Example]) -> str:
        """An in-context prefix: solved examples, each followed by the separator."""
        return "".join(self.demonstration(e) + self.separator for e in examples)

    def identity(self) -> dict:
        return {"question": self.question, "answer": self.answer,
                "delimiter": self.delimiter, "separator": self.separator}
