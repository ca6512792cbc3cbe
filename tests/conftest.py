"""Shared test settings."""
import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Test tensors are tiny and CI has 2 shared cores: intra-op threads would only thrash. Set for every test,
    so a test whose code sets the threads (the reference runners do) cannot leak them into the next."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
