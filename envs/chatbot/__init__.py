"""The chatbot: ``rlcourse/Chatbot-v0``, token-by-token replies to contexts of a real corpus."""

from rlcourse.envs.chatbot.corpus import ChatCorpus, load_conversations
from rlcourse.envs.chatbot.env import DULL_REPLIES, ChatbotVecEnv
from rlcourse.envs.chatbot.tokenizer import WordTokenizer

__all__ = ["DULL_REPLIES", "ChatCorpus", "ChatbotVecEnv", "WordTokenizer", "load_conversations"]
