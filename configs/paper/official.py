"""The papers' settings as their official scripts set them: ONE table, typed by hand from the official
repositories (never derived from this project's code). `generate.py` maps it onto this project's config
fields; tests/test_config.py checks every generated config against it.

Each entry is `name: (value, source)`, where `name` is the official argument name (TRL / the official
trainer's config class) and `source` is the file in the paper's repository that sets it (a command-line
flag overrides the YAML file it is passed with; a config-class default applies where neither sets it).
A paper's `tasks` entries override its `common` ones for that task.

Repositories (read 2026-11-24): EGSPO vishnutez/egspo-dllm-rl @a7d618b, ESPO ML-GSAI/ESPO @b5f2dac,
d1 dllm-reasoning/d1 @837888f, wd1 xiaohangt/wd1 @0898985, TRL huggingface/trl (v0.16.0 for the sampler and
the reference sync).
"""

REPOS = {"egspo": "vishnutez/egspo-dllm-rl", "espo": "ML-GSAI/ESPO", "d1": "dllm-reasoning/d1",
         "wd1": "xiaohangt/wd1"}

_EG_SH = "egspo/train.sh"
_EG_YAML = "egspo/slurm_scripts/train.yaml"
_EG_CFG = "egspo/egspo_config.py (default)"
_EG_TRAIN = "egspo/egspo_train.py"
_ES_YAML = "recipes/train.yaml"
_ES_TRAINER = "espo/espo_trainer.py"
_D1_YAML = "diffu-grpo/slurm_scripts/train.yaml"
_D1_CFG = "diffu-grpo/diffu_grpo_config.py (default)"
_D1_TRAIN = "diffu-grpo/diffu_grpo_train.py"
_WD_YAML = "wd1/train.yaml"
_WD_CFG = "wd1/trainers/diffu_grpo_config.py (default)"
_WD_TRAIN = "wd1/run_train.py"
_WD_TRAINER = "wd1/trainers/rev_grpo_trainer.py"
_PEFT_NOTE = ("; PEFT matches these names, so on LLaDA (attn_out, ff_proj, ff_out) only q, k, v and up get "
              "adapters, on Dream (Qwen2 names) all seven")


def _es(task: str) -> str:
    return f"recipes/run_{task}_llada.sh"


def _wd(task: str) -> str:
    return f"run/wll_NP_{task}.sh"


OFFICIAL = {
    "egspo": {
        "common": {
            "num_processes": (8, "egspo/accel_cfg/accelerate_machine_0.yaml num_processes: 8 (train.sh: "
                                 "#SBATCH --nodes=4, --gres=gpu:a100:2)"),
            "per_device_train_batch_size": (6, _EG_SH + " PER_DEVICE_TRAIN_BATCH_SIZE=6 (completions per device)"),
            "generation_batch_size": (6, _EG_SH + " --generation_batch_size ${PER_DEVICE_TRAIN_BATCH_SIZE}"),
            "num_generations": (8, _EG_SH + " NUM_GENERATIONS=8"),
            "gradient_accumulation_steps": (2, _EG_SH + " GRAD_ACCUMULATION_STEPS=2"),
            "logps_eval_num_steps": (8, _EG_SH + " LOGPS_EVAL_NUM_STEPS=8 (K selected steps; a rollout every "
                                        "K x num_gradient_steps micro-steps, egspo/egspo_trainer.py _prepare_inputs)"),
            "num_gradient_steps": (1, _EG_CFG),
            "num_iterations": (1, _EG_CFG + "; unused by EGSPOTrainer's own _prepare_inputs"),
            "logps_eval_time_steps_mode": ("high_entropy", _EG_SH + " LOGPS_EVAL_TIME_STEPS_MODE"),
            "logps_aggregation_mode": ("sum", _EG_CFG),
            "lambda1": (0.5, _EG_SH + " LAMBDA1=0.5 (EGSPO-SA; the run name ep_lambda1_0.0 is EGSPO without SA)"),
            "normalize_returns": (True, _EG_SH + " NORMALIZE_RETURNS=true (divide by 1 + lambda1)"),
            "diffusion_steps": (128, _EG_YAML),
            "block_length": (32, _EG_YAML),
            "max_completion_length": (256, _EG_YAML),
            "remasking": ("low_confidence", _EG_YAML),
            "cfg_scale": (0.0, _EG_CFG),
            "temperature": (0.9, _EG_SH + " TEMPERATURE=0.9"),
            "gumbel_noise_dtype": ("bfloat16", "egspo/egspo_trainer.py generate: add_gumbel_noise(..., "
                                               "dtype=model.dtype) with torch_dtype bfloat16"),
            "max_prompt_length": (200, _EG_YAML + " (left truncation: egspo_trainer.py "
                                                  "prompt_ids[:, -max_prompt_length:])"),
            "learning_rate": (3e-5, _EG_SH + " LEARNING_RATE=3e-5"),
            "lr_scheduler_type": ("constant_with_warmup", _EG_YAML),
            "warmup_ratio": (0.0001, _EG_YAML),
            "weight_decay": (0.1, _EG_YAML),
            "adam_beta1": (0.9, _EG_YAML),
            "adam_beta2": (0.99, _EG_YAML),
            "max_grad_norm": (0.2, _EG_YAML),
            "beta": (0.04, _EG_YAML),
            "epsilon": (0.2, _EG_SH + " EPSILON=0.2 (overrides train.yaml's 0.5)"),
            "epsilon_high": (0.5, _EG_SH + " EPSILON_HIGH=0.5"),
            "use_peft": (True, _EG_YAML),
            "lora_r": (128, _EG_YAML),
            "lora_alpha": (64, _EG_YAML),
            "lora_dropout": (0.05, _EG_YAML),
            "lora_target_modules": (("q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj", "gate_proj"),
                                    _EG_TRAIN + " LoraConfig(target_modules=...)" + _PEFT_NOTE),
            "load_in_4bit": ("nf4", _EG_TRAIN + " BitsAndBytesConfig(load_in_4bit, nf4, double quant, bf16 compute)"),
            "torch_dtype": ("bfloat16", _EG_YAML + " and " + _EG_TRAIN),
            "sync_ref_model": (True, _EG_YAML + " (ref_model_sync_steps 64); a no-op with PEFT: TRL's "
                                                "GRPOTrainer sets ref_model None and SyncRefModelCallback skips it"),
            "ref_model_sync_steps": (64, _EG_YAML),
            "num_train_epochs": (50, _EG_YAML),
            "save_steps": (200, _EG_YAML + " (optimizer steps: TRL's global step)"),
            "save_total_limit": (40, _EG_YAML),
            "checkpoints_evaluated": (20, "eval/eval_checkpoints.sh NUM_CHECKPOINTS=20; eval/eval_checkpoints.py takes "
                                          "sorted(os.listdir(checkpoint_dir))[::-1][:20] (a lexicographic order) and "
                                          "eval/get_and_save_metrics.py the best per length"),
            "seed": (42, _EG_YAML),
            "model": ("GSAI-ML/LLaDA-8B-Instruct", _EG_SH + " MODEL_PATH"),
            "reward_set": ("d1", "egspo/reward_func.py (d1's functions plus coding_reward_func)"),
            "prompt_recipe": ("egspo", "egspo/data_utils.py"),
            "decode": ("official", "egspo/egspo_trainer.py batch_decode(..., skip_special_tokens=True)"),
            "attention_mask_in_rollout": (False, "egspo/egspo_trainer.py _generate_and_score_completions "
                                                 "(WARNING comment: attention masks are not used)"),
        },
        "tasks": {
            "gsm8k": {"dataset": ("openai/gsm8k main train", "egspo/data_utils.py get_gsm8k_questions"),
                      "reward_funcs": ("xmlcount, soft_format, strict_format, int, correctness", _EG_TRAIN)},
            "math": {"dataset": ("ankner/math-500 train (answer = solution)", "egspo/data_utils.py get_math_questions"),
                     "reward_funcs": ("boxed_and_answer_tags_format, correctness_math", _EG_TRAIN)},
            "countdown": {"dataset": ("Jiayi-Pan/Countdown-Tasks-3to4 train, len(nums) == 3, shuffle(seed), all but "
                                      "the last 500", "egspo/data_utils.py get_countdown_questions; " + _EG_TRAIN),
                          "reward_funcs": ("countdown", _EG_TRAIN)},
            "sudoku": {"dataset": ("dataset/4x4_sudoku_unique_puzzles.csv, shuffle(seed), all but the last 500",
                                   "egspo/data_utils.py get_sudoku_questions; " + _EG_TRAIN),
                       "reward_funcs": ("sudoku", _EG_TRAIN)},
            "code": {"dataset": ("KodCode/KodCode-Light-RL-10K train, the 90% of train_test_split(0.1, seed 42)",
                                 "egspo/data_utils.py get_code_questions"),
                     "reward_funcs": ("xmlcount, coding", _EG_TRAIN)},
        },
    },
    "espo": {
        "common": {
            "num_processes": (8, "recipes/run_*_llada.sh accelerate launch --num_processes 8"),
            "num_iterations": (8, "recipes/run_*_llada.sh NUM_ITER=8 (a rollout every gradient_accumulation_steps x "
                                  "num_iterations micro-steps: espo/espo_trainer.py _prepare_inputs)"),
            "per_device_train_batch_size": (3, "recipes/run_{gsm8k,countdown,sudoku}_llada.sh"),
            "gradient_accumulation_steps": (4, "recipes/run_{gsm8k,countdown,sudoku}_llada.sh"),
            "num_generations": (6, "recipes/run_{gsm8k,countdown,sudoku}_llada.sh"),
            "generation_batch_size": (6, "recipes/run_{gsm8k,countdown,sudoku}_llada.sh"),
            "num_mc": (2, "recipes/run_*_llada.sh --num_mc 2"),
            "reduce_var": (True, _ES_YAML),
            "max_grad_norm": (0.2, "recipes/run_{gsm8k,math,countdown,sudoku}_llada.sh"),
            "warmup_ratio": (0.001, "recipes/run_*_llada.sh"),
            "lr_scheduler_type": ("constant_with_warmup", "recipes/run_*_llada.sh (overrides train.yaml's "
                                                          "cosine_with_min_lr)"),
            "max_prompt_length": (400, "recipes/run_*_llada.sh (left truncation: espo/espo_trainer.py "
                                       "prompt_ids[:, -max_prompt_length:])"),
            "learning_rate": (3e-6, "recipes/run_{gsm8k,math,countdown,sudoku}_llada.sh"),
            "weight_decay": (0.01, "recipes/run_{gsm8k,math,countdown,sudoku}_llada.sh"),
            "adam_beta1": (0.9, _ES_YAML),
            "adam_beta2": (0.99, _ES_YAML),
            "epsilon": (0.2, _ES_YAML + " (epsilon_high unset: TRL clips symmetrically)"),
            "use_peft": (True, "recipes/run_{gsm8k,math,countdown,sudoku}_llada.sh --use_peft true"),
            "lora_r": (128, _ES_YAML),
            "lora_alpha": (64, _ES_YAML),
            "lora_dropout": (0.05, _ES_YAML),
            "lora_target_modules": (("q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj", "gate_proj"),
                                    _ES_YAML + " lora_target_modules" + _PEFT_NOTE),
            "load_in_4bit": ("none", _ES_YAML + " (no quantization; torch_dtype bfloat16)"),
            "torch_dtype": ("bfloat16", _ES_YAML),
            "max_completion_length": (256, _ES_YAML),
            "block_length": (32, _ES_TRAINER + " generate(..., block_length=32) for LLaDA"),
            "generation_temperature": (1.0, _ES_YAML),
            "gumbel_noise_dtype": ("bfloat16", _ES_TRAINER + " generate: add_gumbel_noise(..., dtype=model.dtype)"),
            "dream_sampler": ("diffusion_generate(alg='entropy', top_p=0.95, alg_temp=0.0, steps=diffusion_steps, "
                              "no blocks)", _ES_TRAINER + " _generate_and_score_completions (non-LLaDA models)"),
            "dream_mask_candidate": ("official", _ES_TRAINER + " _generate_and_score_completions: diffusion_generate "
                                     "without a generation_logits_hook_func, so the model repository's sample_tokens "
                                     "draws from every logit, the mask token's included"),
            "sync_ref_model": (True, _ES_YAML + " (a no-op with PEFT, see EGSPO; active for the full fine-tune of "
                                                "code)"),
            "ref_model_sync_steps": (64, _ES_YAML),
            "ref_model_mixup_alpha": (0.6, "TRL GRPOConfig default (not set by ESPO); trl/trainer/callbacks.py "
                                           "SyncRefModelCallback: ref = alpha * policy + (1 - alpha) * ref"),
            "scale_rewards": (False, _ES_YAML),
            "num_train_epochs": (1, _ES_YAML),
            "save_steps": (500, _ES_YAML + " (optimizer steps)"),
            "save_total_limit": (40, _ES_YAML),
            "seed": (42, _ES_YAML),
            "model": ("GSAI-ML/LLaDA-8B-Instruct", "recipes/run_*_llada.sh model_name_or_path"),
            "reward_set": ("espo", "espo/rewards.py"),
            "prompt_recipe": ("espo", "espo/data_utils.py"),
            "decode": ("official", _ES_TRAINER + " batch_decode(completion_ids, skip_special_tokens=True)"),
            "attention_mask_in_rollout": (True, _ES_TRAINER + " generate(model, attention_mask=...) passes it; the "
                                                "released LLaDA modeling code ignores it"),
        },
        "tasks": {
            "gsm8k": {"diffusion_steps": (256, _es("gsm8k")), "beta": (1e-3, _es("gsm8k")),
                      "dataset": ("openai/gsm8k main train", "espo/data_utils.py get_gsm8k_questions")},
            "math": {"diffusion_steps": (256, _es("math")), "beta": (1e-3, _es("math")),
                     "per_device_train_batch_size": (2, _es("math")), "gradient_accumulation_steps": (16, _es("math")),
                     "num_generations": (16, _es("math")), "generation_batch_size": (8, _es("math")),
                     "dataset": ("ankner/math-500 train (answer = solution)", "espo/data_utils.py get_math_questions")},
            "countdown": {"diffusion_steps": (128, _es("countdown")), "beta": (3e-3, _es("countdown")),
                          "epsilon": (0.0, _es("countdown") + " --epsilon 0"),
                          "dataset": ("Jiayi-Pan/Countdown-Tasks-3to4 train, len(nums) == 3 (no hold-out)",
                                      "espo/data_utils.py get_countdown_questions")},
            "sudoku": {"diffusion_steps": (128, _es("sudoku")), "beta": (1e-2, _es("sudoku")),
                       "dataset": ("dataset/4x4_sudoku_unique_puzzles.csv (no hold-out)",
                                   "espo/data_utils.py get_sudoku_questions")},
            "code": {"diffusion_steps": (256, _es("code")), "beta": (1e-2, _es("code")),
                     "per_device_train_batch_size": (1, _es("code")), "gradient_accumulation_steps": (20, _es("code")),
                     "num_generations": (10, _es("code")), "generation_batch_size": (10, _es("code")),
                     "max_grad_norm": (0.8, _es("code")),
                     "use_peft": (False, _es("code") + " --use_peft false (full fine-tune)"),
                     "learning_rate": (1e-6, _ES_YAML + " (run_code_llada.sh does not set it)"),
                     "weight_decay": (0.1, _ES_YAML + " (run_code_llada.sh does not set it)"),
                     "gradient_checkpointing": (True, _es("code")),
                     "dataset": ("recipes/acecode_hard.jsonl: TIGER-Lab/AceCode-89K train, hard filter and "
                                 "reworded copies", "espo/data_utils.py get_code_questions; recipes/process_data.py")},
        },
    },
    "d1": {
        "common": {
            "num_processes": (8, "diffu-grpo/slurm_scripts/accelerate_a100.yaml num_processes: 8"),
            "per_device_train_batch_size": (6, _D1_YAML),
            "gradient_accumulation_steps": (2, _D1_YAML),
            "num_generations": (6, _D1_YAML),
            "generation_batch_size": (6, _D1_YAML),
            "diffusion_steps": (128, _D1_YAML),
            "block_length": (32, _D1_YAML),
            "max_completion_length": (256, _D1_YAML),
            "remasking": ("low_confidence", _D1_YAML),
            "temperature": (0.9, _D1_CFG + " (train.yaml does not set it; sudoku_base.sbatch's '--temperature 0.3' "
                                           "follows a line without a continuation backslash, so it never reaches the "
                                           "trainer)"),
            "gumbel_noise_dtype": ("bfloat16", "diffu-grpo/diffu_grpo_trainer.py generate: add_gumbel_noise(..., "
                                               "dtype=model.dtype)"),
            "max_prompt_length": (200, _D1_YAML + " (left truncation: diffu_grpo_trainer.py "
                                                  "prompt_ids[:, -max_prompt_length:])"),
            "learning_rate": (3e-6, _D1_YAML),
            "lr_scheduler_type": ("constant_with_warmup", _D1_YAML),
            "warmup_ratio": (0.0001, _D1_YAML),
            "weight_decay": (0.1, _D1_YAML),
            "adam_beta1": (0.9, _D1_YAML),
            "adam_beta2": (0.99, _D1_YAML),
            "max_grad_norm": (0.2, _D1_YAML),
            "beta": (0.04, _D1_YAML),
            "epsilon": (0.5, _D1_YAML),
            "p_mask_prompt": (0.15, _D1_YAML),
            "use_peft": (True, _D1_YAML),
            "lora_r": (128, _D1_YAML),
            "lora_alpha": (64, _D1_YAML),
            "lora_dropout": (0.05, _D1_YAML),
            "lora_target_modules": (("q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj", "gate_proj"),
                                    _D1_TRAIN + " LoraConfig(target_modules=...)" + _PEFT_NOTE),
            "load_in_4bit": ("nf4", _D1_TRAIN + " BitsAndBytesConfig(load_in_4bit, nf4, double quant, bf16 compute)"),
            "torch_dtype": ("bfloat16", _D1_YAML),
            "sync_ref_model": (True, _D1_YAML + " (a no-op with PEFT, see EGSPO)"),
            "ref_model_sync_steps": (64, _D1_YAML),
            "num_train_epochs": (10, _D1_YAML),
            "save_steps": (100, _D1_YAML + " (optimizer steps)"),
            "save_total_limit": (500, _D1_YAML),
            "seed": (42, _D1_YAML),
            "model": ("LLaDA-8B-Instruct", "diffu-grpo/slurm_scripts/*_base.sbatch MODEL_PATH"),
            "reward_set": ("d1", "diffu-grpo/reward_func.py"),
            "prompt_recipe": ("d1", "diffu-grpo/data_utils.py"),
            "decode": ("official", "diffu-grpo/diffu_grpo_trainer.py batch_decode(..., skip_special_tokens=True)"),
            "token_mean": ("batch", "diffu-grpo/diffu_grpo_trainer.py compute_loss: (per_token_loss * "
                                    "completion_mask).sum() / completion_mask.sum()"),
            "attention_mask_in_rollout": (False, "diffu-grpo/diffu_grpo_trainer.py (generate() takes no mask)"),
        },
        "tasks": {
            "gsm8k": {"num_iterations": (12, "diffu-grpo/slurm_scripts/gsm_base.sbatch NUM_ITER=12"),
                      "dataset": ("openai/gsm8k main train", "diffu-grpo/data_utils.py get_gsm8k_questions")},
            "math": {"num_iterations": (12, "diffu-grpo/slurm_scripts/math_base.sbatch NUM_ITER=12"),
                     "dataset": ("ankner/math-500 train (answer = solution)",
                                 "diffu-grpo/data_utils.py get_math_questions")},
            "countdown": {"num_iterations": (8, "diffu-grpo/slurm_scripts/countdown_base.sbatch NUM_ITER=8"),
                          "dataset": ("Jiayi-Pan/Countdown-Tasks-3to4 train, len(nums) == 3, shuffle(seed), all but "
                                      "the last 500", "diffu-grpo/data_utils.py; " + _D1_TRAIN)},
            "sudoku": {"num_iterations": (8, "diffu-grpo/slurm_scripts/sudoku_base.sbatch NUM_ITER=8 (diffu-grpo/"
                                             "run.sh, a generic example, uses 12)"),
                       "dataset": ("dataset/4x4_sudoku_unique_puzzles.csv, shuffle(seed), all but the last 500",
                                   "diffu-grpo/data_utils.py; " + _D1_TRAIN)},
            # d1 has no code task (see NOT_IN_OFFICIAL_CODE): the nearest official values
            "code": {"num_iterations": (12, "not in d1: diffu-grpo/run.sh NUM_ITER=12, d1's value for gsm8k and math"),
                     "dataset": ("KodCode/KodCode-Light-RL-10K train", "not in d1: egspo/data_utils.py "
                                                                       "get_code_questions")},
        },
    },
    "wd1": {
        "common": {
            "num_processes": (4, "run/wll_NP_*.sh accelerate launch --num_processes 4 (wd1/accelerate.yaml "
                                 "num_processes: 4)"),
            "per_device_train_batch_size": (6, _WD_YAML),
            "gradient_accumulation_steps": (2, _WD_YAML),
            "num_generations": (6, _WD_YAML),
            "generation_batch_size": (6, _WD_YAML),
            "trainer_type": ("wll_d1_neg", "run/wll_NP_*.sh --trainer_type wll_d1_neg (RevDiffuGRPOTrainer, "
                                           "wd1/run_train.py; wll_d1_pos_only is run/wll_P_*.sh)"),
            "diffusion_steps": (128, _WD_YAML),
            "block_length": (32, _WD_YAML),
            "max_completion_length": (256, _WD_YAML),
            "remasking": ("low_confidence", _WD_YAML),
            "temperature": (0.9, _WD_CFG + " (train.yaml and the scripts do not set it)"),
            "gumbel_noise_dtype": ("bfloat16", _WD_TRAINER + " generate: add_gumbel_noise(..., dtype=model.dtype)"),
            "max_prompt_length": (200, _WD_YAML + " (left truncation: " + _WD_TRAINER +
                                  " prompt_ids[:, -max_prompt_length:])"),
            "learning_rate": (3e-6, _WD_YAML),
            "lr_scheduler_type": ("constant_with_warmup", _WD_YAML),
            "warmup_ratio": (0.0001, _WD_YAML),
            "weight_decay": (0.1, _WD_YAML),
            "adam_beta1": (0.9, _WD_YAML),
            "adam_beta2": (0.99, _WD_YAML),
            "max_grad_norm": (0.2, _WD_YAML),
            "beta": (0.04, _WD_YAML + "; never read by " + _WD_TRAINER + " compute_loss (no KL term)"),
            "epsilon": (0.5, _WD_YAML + "; never read by " + _WD_TRAINER + " compute_loss (no ratio)"),
            "p_mask_prompt": (0.15, _WD_YAML),
            "use_peft": (True, _WD_YAML),
            "lora_r": (128, _WD_YAML),
            "lora_alpha": (64, _WD_YAML),
            "lora_dropout": (0.05, _WD_YAML),
            "lora_target_modules": (("q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj", "gate_proj"),
                                    _WD_TRAIN + " LoraConfig(target_modules=...)" + _PEFT_NOTE),
            "load_in_4bit": ("nf4", _WD_TRAIN + " BitsAndBytesConfig(load_in_4bit, nf4, double quant, bf16 compute)"),
            "torch_dtype": ("bfloat16", _WD_YAML),
            "sync_ref_model": (True, _WD_YAML + " (a no-op with PEFT, see EGSPO)"),
            "ref_model_sync_steps": (64, _WD_YAML),
            "num_train_epochs": (10, _WD_YAML),
            "save_steps": (500, _WD_YAML + " (optimizer steps)"),
            "save_total_limit": (20, _WD_YAML),
            "seed": (42, _WD_YAML),
            "model": ("GSAI-ML/LLaDA-8B-Instruct", "run/wll_NP_*.sh MODEL_NAME (overrides train.yaml's model_path)"),
            "reward_set": ("d1", "wd1/reward_func.py (d1's functions, equal up to formatting)"),
            "prompt_recipe": ("d1", "wd1/data_utils.py (d1's prompts, equal up to formatting)"),
            "decode": ("official", _WD_TRAINER + " batch_decode(..., skip_special_tokens=True)"),
            "attention_mask_in_rollout": (False, _WD_TRAINER + " (generate() takes no mask)"),
        },
        "tasks": {
            "gsm8k": {"num_iterations": (12, _wd("gsm8k") + " NUM_ITER=12"),
                      "dataset": ("openai/gsm8k main train", "wd1/data_utils.py get_gsm8k_questions")},
            "math": {"num_iterations": (12, _wd("math") + " NUM_ITER=12"),
                     "dataset": ("ankner/math-500 train (answer = solution)", "wd1/data_utils.py get_math_questions")},
            "countdown": {"num_iterations": (12, _wd("countdown") + " NUM_ITER=12"),
                          "dataset": ("Jiayi-Pan/Countdown-Tasks-3to4 train, len(nums) == 3, shuffle(seed), all but "
                                      "the last 500", "wd1/data_utils.py; " + _WD_TRAIN)},
            "sudoku": {"num_iterations": (8, _wd("sudoku") + " NUM_ITER=8"),
                       "dataset": ("dataset/4x4_sudoku_unique_puzzles.csv, shuffle(seed), all but the last 500",
                                   "wd1/data_utils.py; " + _WD_TRAIN)},
            # wd1 has no code task (see NOT_IN_OFFICIAL_CODE): the nearest official values
            "code": {"num_iterations": (12, "not in wd1: " + _wd("gsm8k") + " NUM_ITER=12, wd1's value for gsm8k "
                                            "and math"),
                     "dataset": ("KodCode/KodCode-Light-RL-10K train", "not in wd1: egspo/data_utils.py "
                                                                       "get_code_questions")},
        },
    },
}

# What no official script gives (the generated configs fill it as documented in generate.py).
NOT_IN_OFFICIAL_CODE = {
    ("egspo", "dream7b"): "EGSPO has no Dream-7B run: its LLaDA recipe is applied to Dream",
    ("espo", "dream7b"): "ESPO releases a Dream demo only (recipes/run_demo_dream.sh: 1 process, countdown, 64 steps, "
                         "epsilon 4e-4): the LLaDA task recipes are applied to Dream with Dream's own sampler",
    ("d1", "dream7b"): "d1 has no Dream-7B run: its LLaDA recipe is applied to Dream",
    ("d1", "code"): "d1 has no code task: its recipe is applied to EGSPO's code data (KodCode) and reward",
    ("wd1", "dream7b"): "wd1 has no Dream-7B run: its LLaDA recipe is applied to Dream",
    ("wd1", "code"): "wd1 has no code task: its recipe is applied to EGSPO's code data (KodCode) and reward",
    ("all", "sudoku_train_data"): "dataset/4x4_sudoku_unique_puzzles.csv could not be read here (its blob is not "
                                  "in the public mirror): the generator stands in with d1's test-set blank count (8)",
    ("all", "run_length"): "official runs are num_train_epochs over the data; run.iterations is a budget",
}


def value(paper: str, task: str, name: str):
    """The official value of `name` for `paper` on `task` (KeyError when the paper does not set it)."""
    entry = OFFICIAL[paper]["tasks"].get(task, {}).get(name) or OFFICIAL[paper]["common"][name]
    return entry[0]


def source(paper: str, task: str, name: str) -> str:
    entry = OFFICIAL[paper]["tasks"].get(task, {}).get(name) or OFFICIAL[paper]["common"][name]
    return entry[1]
