"""Each recipe's prompt for one record per task equals the official text, as the official code builds
it: d1 dllm-reasoning/d1 diffu-grpo/data_utils.py (SYSTEM_PROMPT, SUDOKU_SYSTEM_PROMPT and the
get_*_questions f-strings; EGSPO's egspo/data_utils.py is the same for these four tasks and adds
get_code_questions), ESPO ML-GSAI/ESPO espo/data_utils.py (get_gsm8k/math/countdown/sudoku_questions,
make_conversation). The expected strings below are the official f-strings rendered for the records,
typed in; then the chat templates of the real models render them (Dream's with its default system
message, LLaDA's trimming each message)."""

import pytest

from dlrl_jax import config
from dlrl_jax.config import ConfigError
from dlrl_jax.data import readers
from dlrl_jax.tasks import prompts, recipe_prompts
from dlrl_jax.tasks import build_task

GSM8K = {"question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
                     "How many clips did Natalia sell altogether in April and May?", "answer": "72"}
MATH = {"question": "What is $\\frac{1}{2} + \\frac{1}{3}$?", "answer": "\\frac{5}{6}"}
COUNTDOWN = {"numbers": [44, 19, 35], "target": 98}
SUDOKU = {"puzzle": "0401002010030310", "solution": "2431312412434312"}
CODE = {"question": "Write a function add(a, b) that returns the sum of a and b.",
        "tests": ["assert add(1, 2) == 3", "assert add(0, 0) == 0"]}
RECORDS = {"gsm8k": GSM8K, "math": MATH, "countdown": COUNTDOWN, "sudoku": SUDOKU, "code": CODE}

D1_GSM8K = (
    '\n'
    'Respond in the following format:\n'
    '<reasoning>\n'
    '...\n'
    '</reasoning>\n'
    '<answer>\n'
    '...\n'
    '</answer>\n'
    '\n'
    '\n'
    'Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How '
    'many clips did Natalia sell altogether in April and May?'
)
D1_COUNTDOWN = (
    '\n'
    'Respond in the following format:\n'
    '<reasoning>\n'
    '...\n'
    '</reasoning>\n'
    '<answer>\n'
    '...\n'
    '</answer>\n'
    '\n'
    'Using only the numbers [44, 19, 35], create an arithmetic expression that evaluates to exactly 98. '
    'You must use all numbers from the list, and each number must be used exactly once. You may use the '
    'operations +, -, *, and / as needed. After reasoning, provide only your final expression inside '
    '<answer></answer> tags without including an equals sign or the target number. For example, if the '
    'numbers are [2, 3, 4] and the target is 5, a valid answer is: <answer>\n'
    '2*4-3\n'
    '</answer>'
)
D1_SUDOKU = (
    '\n'
    'Please solve the following 4x4 Sudoku puzzle. The puzzle is provided as a 16-character string '
    "reading left-to-right, top-to-bottom, where '0' represents empty cells.\n"
    '\n'
    'Rules:\n'
    '- Fill empty cells with digits 1-4\n'
    '- Each row must contain digits 1-4 exactly once\n'
    '- Each column must contain digits 1-4 exactly once\n'
    '- Each 2x2 box must contain digits 1-4 exactly once\n'
    '\n'
    'Important: Your solution must be a COMPLETE 16-character string with only the digits 1-4, '
    'representing your final solved grid.\n'
    '\n'
    'Respond in this exact format:\n'
    '<reasoning>\n'
    'Your step-by-step solving process\n'
    '</reasoning>\n'
    '<answer>\n'
    '[16-character solution string with no spaces or separators]\n'
    '</answer>\n'
    '\n'
    '\n'
    'Solve the following Sudoku puzzle: 0401002010030310\n'
)
D1_MATH = (
    '\n'
    'Respond in the following format:\n'
    '<reasoning>\n'
    '...\n'
    '</reasoning>\n'
    '<answer>\n'
    '...\n'
    '</answer>\n'
    '\n'
    '\n'
    'You are a math expert. You will be given a question to solve. Solve it step by step. Wrap the final '
    'answer in a \\boxed{}. \n'
    '\n'
    'What is $\\frac{1}{2} + \\frac{1}{3}$?'
)
EGSPO_CODE = (
    '\n'
    'Respond in the following format:\n'
    '<reasoning>\n'
    '...\n'
    '</reasoning>\n'
    '<answer>\n'
    '...\n'
    '</answer>\n'
    '\n'
    '\n'
    'You are a coding expert. You will be given a coding problem to solve. Solve it step by step. \n'
    '\n'
    'Write a function add(a, b) that returns the sum of a and b.'
)
ESPO_GSM8K = (
    'Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How '
    'many clips did Natalia sell altogether in April and May?\n'
    'Please reason step by step, and put your final answer within \\boxed{}.'
)
ESPO_MATH = (
    'What is $\\frac{1}{2} + \\frac{1}{3}$?\n'
    'Please reason step by step, and put your final answer within \\boxed{}.'
)
ESPO_COUNTDOWN = (
    '\n'
    'Respond in the following format:\n'
    '<reasoning>\n'
    '...\n'
    '</reasoning>\n'
    '<answer>\n'
    '...\n'
    '</answer>\n'
    '\n'
    'Using only the numbers [44, 19, 35], create an arithmetic expression that evaluates to exactly 98. '
    'You must use all numbers from the list, and each number must be used exactly once. You may use the '
    'operations +, -, *, and / as needed. After reasoning, provide only your final expression inside '
    '<answer></answer> tags without including an equals sign or the target number. For example, if the '
    'numbers are [2, 3, 4] and the target is 5, a valid answer is: <answer>\n'
    '2*4-3\n'
    '</answer>'
)
ESPO_SUDOKU = (
    '\n'
    'Please solve the following 4x4 Sudoku puzzle. The puzzle is provided as a 16-character string '
    "reading left-to-right, top-to-bottom, where '0' represents empty cells.\n"
    '\n'
    '**Rules:**\n'
    '- Fill empty cells with digits 1-4.\n'
    '- Each row must contain digits 1-4 exactly once.\n'
    '- Each column must contain digits 1-4 exactly once.\n'
    '- Each 2x2 box must contain digits 1-4 exactly once.\n'
    '\n'
    '**Example:**\n'
    'Puzzle: 0401002010030310\n'
    'This puzzle grid looks like this:\n'
    '0 4 | 0 1\n'
    '0 0 | 2 0\n'
    '----+----\n'
    '1 0 | 0 3\n'
    '0 3 | 1 0\n'
    '\n'
    'Solution: 2431312412434312\n'
    'The solved grid looks like this:\n'
    '2 4 | 3 1\n'
    '3 1 | 2 4\n'
    '----+----\n'
    '1 2 | 4 3\n'
    '4 3 | 1 2\n'
    '\n'
    '**Important:** Your solution must be a COMPLETE 16-character string with only the digits 1-4, '
    'representing your final solved grid.\n'
    '\n'
    'Respond in this exact format:\n'
    '<reasoning>\n'
    'Your step-by-step solving process\n'
    '</reasoning>\n'
    '<answer>\n'
    '[16-character solution string with no spaces or separators]\n'
    '</answer>\n'
    '\n'
    '\n'
    'Now, solve the following Sudoku puzzle: 0401002010030310\n'
)
ESPO_CODE = (
    'Write a function add(a, b) that returns the sum of a and b.\n'
    'Test cases: assert add(1, 2) == 3'
)
ESPO_CODE_SYSTEM = (
    'You are a helpful assistant. When you output code, it must be in a single fenced code block using '
    'triple backticks (```) and the language specifier (e.g., ```python). The code block must appear as '
    'the last part of your response and end with a newline after the closing backticks (```). Do not '
    'include any text after the code block. Do not include extra code blocks or explanations outside the '
    'final code block.'
)

EXPECTED = {("d1", "gsm8k"): D1_GSM8K, ("d1", "countdown"): D1_COUNTDOWN, ("d1", "sudoku"): D1_SUDOKU,
            ("d1", "math"): D1_MATH,
            ("egspo", "gsm8k"): D1_GSM8K, ("egspo", "countdown"): D1_COUNTDOWN, ("egspo", "sudoku"): D1_SUDOKU,
            ("egspo", "math"): D1_MATH, ("egspo", "code"): EGSPO_CODE,
            ("espo", "gsm8k"): ESPO_GSM8K, ("espo", "math"): ESPO_MATH, ("espo", "countdown"): ESPO_COUNTDOWN,
            ("espo", "sudoku"): ESPO_SUDOKU, ("espo", "code"): ESPO_CODE}


@pytest.mark.parametrize("recipe,task", sorted(EXPECTED))
def test_user_text_is_the_official_text(recipe, task):
    assert prompts.prompt_text(task, RECORDS[task], "chat", recipe) == EXPECTED[recipe, task]
    assert prompts.system_text(task, recipe) == (ESPO_CODE_SYSTEM if (recipe, task) == ("espo", "code") else None)
    assert recipe_prompts.source(recipe, task).split()[0] in ("dllm-reasoning/d1", "vishnutez/egspo-dllm-rl",
                                                              "ML-GSAI/ESPO")


def test_espo_code_hides_the_test_when_the_question_has_a_fenced_block():
    question = "Please complete the following problem:\n```\ndef add(a, b):\n    \"\"\"Sum.\"\"\"\n```\n"
    assert prompts.prompt_text("code", dict(CODE, question=question), "chat", "espo") == question


def test_missing_recipe_and_plain_style_fail_by_name():
    with pytest.raises(ValueError, match="recipe 'd1' has no code prompt .* recipes with one: dlrl, egspo, espo"):
        prompts.prompt_text("code", CODE, "chat", "d1")
    with pytest.raises(ConfigError, match="task.prompt_recipe 'd1' is a chat prompt; set task.prompt_style=chat"):
        config.load(None, ["task.prompt_recipe=d1"])
    with pytest.raises(ConfigError, match="task.prompt_recipe"):
        config.load(None, ["task.prompt_recipe=d3", "task.prompt_style=chat"])


def _dream():
    import os

    from transformers import Qwen2TokenizerFast

    from dlrl_jax.models.tokenizer import Tokenizer
    path = "/work/shared/real_models/Dream-v0-Instruct-7B"
    if not os.path.isfile(os.path.join(path, "vocab.json")):
        pytest.skip("Dream tokenizer files absent")
    return Tokenizer(Qwen2TokenizerFast.from_pretrained(path), mask_id=151666, eos_id=151643, pad_id=151643)


def test_rendered_through_dreams_chat_template():
    tok = _dream()
    user = prompts.prompt_text("sudoku", SUDOKU, "chat", "d1")
    assert tok.chat_prompt(user, None) == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                                           f"<|im_start|>user\n{D1_SUDOKU}<|im_end|>\n<|im_start|>assistant\n")
    user, system = prompts.prompt_text("code", CODE, "chat", "espo"), prompts.system_text("code", "espo")
    assert tok.chat_prompt(user, system) == (f"<|im_start|>system\n{ESPO_CODE_SYSTEM}<|im_end|>\n"
                                             f"<|im_start|>user\n{ESPO_CODE}<|im_end|>\n<|im_start|>assistant\n")


@pytest.fixture(scope="module")
def llada_template(tmp_path_factory):
    """The char tokenizer carrying LLaDA's chat template (its tokenizer_config.json) and BOS text."""
    import json

    from dlrl_jax.models.tokenizer import Tokenizer, write_char_tokenizer
    with open("/work/shared/real_models/LLaDA-8B-Instruct/tokenizer_config.json") as f:
        template = json.load(f)["chat_template"]
    path = write_char_tokenizer(str(tmp_path_factory.mktemp("llada")))
    tok = Tokenizer.from_pretrained(path, mask_id=1, eos_id=2, pad_id=0)
    tok.hf.chat_template = template
    tok.hf.bos_token = "<|startoftext|>"
    return tok


@pytest.mark.parametrize("recipe,task", sorted(EXPECTED))
def test_rendered_through_lladas_chat_template(llada_template, recipe, task):
    """LLaDA's template trims each message and starts with the BOS token (all three papers train LLaDA)."""
    user = prompts.prompt_text(task, RECORDS[task], "chat", recipe)
    system = prompts.system_text(task, recipe)
    header = "<|start_header_id|>{}<|end_header_id|>\n\n"
    expected = "<|startoftext|>"
    if (recipe, task) == ("espo", "code"):
        expected += header.format("system") + ESPO_CODE_SYSTEM.strip() + "<|eot_id|>"
    expected += header.format("user") + EXPECTED[recipe, task].strip() + "<|eot_id|>" + header.format("assistant")
    assert llada_template.chat_prompt(user, system) == expected


def test_config_reaches_the_task():
    cfg = config.load(None, ["task.name=gsm8k", "task.prompt_style=chat", "task.prompt_recipe=espo",
                             "task.reward_set=espo", "task.eval_size=2",
                             f"task.train_file={readers.packaged_file('gsm8k_mini.jsonl')}"])
    task = build_task(cfg.task, cfg.seed)
    record = task.train[0]
    assert task.prompt_text(record) == (record["question"] + "\nPlease reason step by step, and put your final "
                                        "answer within \\boxed{}.")
    assert task.reward_set == "espo" and task.system is None
    assert task.score([f"The answer is {record['answer']}.", "nothing"], [record] * 2).tolist() == [1.0, 0.0]
    assert task.correct([f"#### {record['answer']}"], [record]).tolist() == [1.0]
    defaults = config.load(None, []).task
    assert (defaults.reward_set, defaults.prompt_recipe, defaults.decode) == ("dlrl", "dlrl", "cut_eos")


def test_the_system_message_reaches_the_prompt_ids(tmp_path):
    """ESPO's code system message goes through encode_prompts / prompt_length (char template: the
    system text, then <|user|> 4, the user text, <|assistant|> 5)."""
    from dlrl_jax.models.tokenizer import Tokenizer, write_char_tokenizer
    from dlrl_jax.training import setup
    tok = Tokenizer.from_pretrained(write_char_tokenizer(str(tmp_path)), mask_id=1, eos_id=2, pad_id=0)
    system = prompts.system_text("code", "espo")
    user = prompts.prompt_text("code", CODE, "chat", "espo")
    expected = tok.encode(system) + [4] + tok.encode(user) + [5]
    length = setup.prompt_length(tok, [user], "chat", 0, system=system)
    ids, mask = setup.encode_prompts(tok, [user], "chat", length + 2, system=system)
    assert length == len(expected) and ids[0].tolist() == [0, 0] + expected and mask[0].sum() == len(expected)
