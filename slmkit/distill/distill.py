"""Distillation end to end: build the data for the chosen mode, then train the student with the
trainer. Off-policy: windows of a text corpus scored by the teacher (live or from a top-k cache).
On-policy: the student samples continuations of corpus prefixes, the teacher scores them (GKD).
Sequence: the teacher answers prompts, the student is fine-tuned on the answers."""

from __future__ import annotations

from slmkit.errors import SlmError


def distill(student, tokenizer, options, teacher=None, teacher_tokenizer=None, show_progress: bool = True,
            stop_after: int | None = None):
    """Train `student` from the teacher named in options (or passed in); returns (student, TrainResult)."""
    from slmkit.distill.objective import DistillObjective, check_same_tokenizer
    from slmkit.tune.sft import pad_id
    from slmkit.tune.trainer import corpus_windows, perplexity_eval, train

    eval_fn = perplexity_eval(tokenizer, options.eval_data, options.eval_seqlen, options.eval_windows) if options.eval_data else None
    if options.mode == "sequence":
        return sequence_kd(student, tokenizer, options, eval_fn, show_progress, stop_after)
    if options.teacher_cache:
        from slmkit.distill.teacher_cache import load_teacher_cache

        examples, meta = load_teacher_cache(options.teacher_cache)
        check_same_tokenizer(tokenizer, teacher_fingerprint=meta.get("vocab"))
        teacher = None
    else:
        if teacher is None:
            from slmkit.distill.sequence import is_endpoint
            from slmkit.models.loading import load

            if is_endpoint(options.teacher):
                raise SlmError("an endpoint teacher returns text, not logits: use --mode sequence")
            teacher, teacher_tokenizer = load(options.teacher)
        check_same_tokenizer(tokenizer, teacher_tokenizer or tokenizer)
        examples = corpus_windows(tokenizer, options.data, options.seqlen)
    student.train()
    objective = DistillObjective(student, teacher, options)
    result = train(objective, examples, options, pad_id=pad_id(tokenizer), eval_fn=eval_fn,
                   show_progress=show_progress, stop_after=stop_after)
    return student.eval(), result


def sequence_kd(student, tokenizer, options, eval_fn=None, show_progress: bool = True, stop_after: int | None = None):
    """Sequence-level KD: teacher answers → fine-tune the student on them (loss on answer tokens, packed)."""
    from slmkit.distill.sequence import prompts_of, teacher_conversations
    from slmkit.tune.sft import pad_id, sft_examples
    from slmkit.tune.trainer import CausalLMObjective, train

    conversations = teacher_conversations(options.teacher, prompts_of(options.data), options.new_tokens,
                                          options.endpoint_model, show_progress)
    examples = sft_examples(tokenizer, options.data, options.seqlen, packing=True, conversations=conversations)
    student.train()
    result = train(CausalLMObjective(student), examples, options, pad_id=pad_id(tokenizer), eval_fn=eval_fn,
                   show_progress=show_progress, stop_after=stop_after)
    return student.eval(), result


def distill_step(model, tokenizer, options, context):
    model, result = distill(model, tokenizer, options)
    context.log.append(f"distill: {result.steps} steps, {result.tokens_per_s:.0f} tokens/s, final loss {result.losses[-1]:.4f}")
    return model
