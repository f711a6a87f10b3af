from django.urls import path

from . import views

urlpatterns = [
    path("accounts", views.open_account),
    path("accounts/<str:account_id>/deposits", views.deposit),
    path("accounts/<str:account_id>", views.balance),
]
